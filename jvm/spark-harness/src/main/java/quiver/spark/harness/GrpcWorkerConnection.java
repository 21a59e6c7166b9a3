package quiver.spark.harness;

import io.grpc.ManagedChannel;
import java.util.concurrent.TimeUnit;
import org.apache.spark.udf.worker.core.WorkerConnection;

/** Spark's {@link WorkerConnection} to one worker: a gRPC channel to its endpoint. */
public final class GrpcWorkerConnection implements WorkerConnection {
  private final String address;
  private final ManagedChannel channel;

  GrpcWorkerConnection(String address, ManagedChannel channel) {
    this.address = address;
    this.channel = channel;
  }

  /** The worker's {@code --connection} value: a socket path or a port. */
  public String address() {
    return address;
  }

  public ManagedChannel channel() {
    return channel;
  }

  @Override
  public boolean isActive() {
    return !channel.isShutdown();
  }

  @Override
  public void close() {
    channel.shutdownNow();
    try {
      channel.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
