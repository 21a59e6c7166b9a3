package quiver.spark.harness;

import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.MultiThreadIoEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollIoHandler;
import io.grpc.stub.ClientCalls;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.apache.spark.udf.worker.Heartbeat;
import org.apache.spark.udf.worker.UDFWorkerSpecification;
import org.apache.spark.udf.worker.WorkerRequest;
import org.apache.spark.udf.worker.WorkerResponse;
import org.apache.spark.udf.worker.core.WorkerConnection;
import org.apache.spark.udf.worker.core.WorkerHandle;
import org.apache.spark.udf.worker.core.WorkerLogger;
import org.apache.spark.udf.worker.core.WorkerSession;
import org.apache.spark.udf.worker.core.direct.DirectWorkerDispatcher;
import org.apache.spark.udf.worker.core.direct.DirectWorkerException;
import org.apache.spark.udf.worker.core.direct.DirectWorkerTimeoutException;

/**
 * Spark's released {@link DirectWorkerDispatcher} with a gRPC transport: Spark spawns the worker
 * ({@code runner} + {@code --id ID --connection ADDRESS}, output to a log file); this class
 * names the endpoint, waits until the worker answers {@code Manage(Heartbeat)}, and opens a
 * {@link GrpcWorkerSession} per session on the worker's channel.
 *
 * <p>Spark's constructor calls {@link #validateTransportSupport} and {@link #initialize} before
 * this class's fields are assigned, so everything here is created on first use.
 */
public final class QuiverWorkerDispatcher extends DirectWorkerDispatcher {
  /** How often readiness is polled (docs/spark-protocol.md §1: every 10–50 ms). */
  private static final long READY_POLL_MS = 20;

  private Path socketDir;
  private EventLoopGroup epollGroup;
  private Map<String, ManagedChannel> readyChannels;
  private Map<String, Process> processes;

  public QuiverWorkerDispatcher(UDFWorkerSpecification spec, WorkerLogger logger) {
    super(spec, logger);
  }

  /** The worker process Spark started for a session's endpoint (to kill it in tests). */
  public synchronized Process process(String address) {
    return state().processes.get(address);
  }

  private WorkerTransport transport() {
    return WorkerTransport.of(workerSpec());
  }

  private synchronized QuiverWorkerDispatcher state() {
    if (processes == null) {
      processes = new ConcurrentHashMap<>();
      readyChannels = new ConcurrentHashMap<>();
    }
    return this;
  }

  private synchronized Path socketDir() {
    if (socketDir == null) {
      try {
        // Private to this user (0700): a worker's socket is its only access control.
        socketDir =
            Files.createTempDirectory(
                "quiver-spark-", PosixFilePermissions.asFileAttribute(
                    PosixFilePermissions.fromString("rwx------")));
      } catch (IOException e) {
        throw new UncheckedIOException("cannot create the directory for worker sockets", e);
      }
    }
    return socketDir;
  }

  private synchronized EventLoopGroup epollGroup() {
    if (epollGroup == null && transport() == WorkerTransport.UNIX_SOCKET) {
      epollGroup = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
    }
    return epollGroup;
  }

  @Override
  public void validateTransportSupport(UDFWorkerSpecification spec) {
    if (!spec.hasDirect()) {
      throw new IllegalArgumentException("only DirectWorker specifications are supported");
    }
    WorkerTransport.of(spec);
  }

  @Override
  public String newEndpointAddress(String workerId) {
    return transport().newAddress(workerId, socketDir());
  }

  /**
   * Polls {@code Manage(Heartbeat)} until the worker answers, it exits, or Spark's
   * initialization timeout passes. The answer must name the pid Spark started.
   */
  @Override
  public void waitForReady(String address, Process process, File outputFile) {
    state().processes.put(address, process);
    ManagedChannel channel = transport().connect(address, epollGroup());
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(initTimeoutMs());
    StatusRuntimeException lastError = null;
    try {
      while (System.nanoTime() < deadline) {
        if (!process.isAlive()) {
          throw new DirectWorkerException(
              "the worker exited with status " + process.exitValue() + " before it was ready; "
                  + "its output:\n" + readOutputTail(outputFile),
              null);
        }
        try {
          WorkerResponse answer = heartbeat(channel, 1000);
          checkHeartbeat(answer, process);
          readyChannels.put(address, channel);
          return;
        } catch (StatusRuntimeException e) {
          lastError = e; // not listening yet
        }
        Thread.sleep(READY_POLL_MS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      channel.shutdownNow();
      throw new DirectWorkerException("interrupted while waiting for the worker", e);
    } catch (RuntimeException e) {
      channel.shutdownNow();
      throw e;
    }
    channel.shutdownNow();
    throw new DirectWorkerTimeoutException(
        "the worker did not answer Manage(Heartbeat) at " + address + " within "
            + initTimeoutMs() + " ms; its output:\n" + readOutputTail(outputFile),
        lastError);
  }

  static WorkerResponse heartbeat(ManagedChannel channel, long timeoutMs) {
    WorkerRequest request =
        WorkerRequest.newBuilder().setHeartbeat(Heartbeat.getDefaultInstance()).build();
    return ClientCalls.blockingUnaryCall(
        channel,
        UdfWorkerService.MANAGE,
        io.grpc.CallOptions.DEFAULT.withDeadlineAfter(timeoutMs, TimeUnit.MILLISECONDS),
        request);
  }

  /** docs/spark-protocol.md §1: the answer is a HeartbeatResponse whose metrics carry the pid. */
  private static void checkHeartbeat(WorkerResponse answer, Process process) {
    if (!answer.hasHeartbeat()) {
      throw new DirectWorkerException(
          "Manage(Heartbeat) was answered with " + answer.getManageCase()
              + " instead of a HeartbeatResponse",
          null);
    }
    String pid = answer.getHeartbeat().getMetricsMap().get("pid");
    if (!Long.toString(process.pid()).equals(pid)) {
      throw new DirectWorkerException(
          "HeartbeatResponse.metrics[\"pid\"] is " + pid + ", but Spark started pid "
              + process.pid() + " (another process answers on this endpoint?)",
          null);
    }
  }

  @Override
  public void cleanupEndpointAddress(String address) {
    // The process stays known: a test reads its exit status after Spark has closed it.
    ManagedChannel stale = state().readyChannels.remove(address);
    if (stale != null) {
      stale.shutdownNow();
    }
    if (transport() == WorkerTransport.UNIX_SOCKET) {
      try {
        Files.deleteIfExists(Path.of(address));
      } catch (IOException e) {
        logger().warn(() -> "cannot remove the worker socket " + address, e);
      }
    }
  }

  @Override
  public WorkerConnection newConnection(String address) {
    ManagedChannel channel = state().readyChannels.remove(address);
    if (channel == null) {
      channel = transport().connect(address, epollGroup());
    }
    return new GrpcWorkerConnection(address, channel);
  }

  @Override
  public WorkerSession newSession(WorkerHandle handle, WorkerConnection connection) {
    return new GrpcWorkerSession(handle, logger(), (GrpcWorkerConnection) connection);
  }

  @Override
  public synchronized void closeTransport() {
    if (epollGroup != null) {
      epollGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).awaitUninterruptibly();
      epollGroup = null;
    }
    if (socketDir != null) {
      try {
        Files.deleteIfExists(socketDir);
      } catch (IOException e) {
        logger().warn(() -> "cannot remove " + socketDir, e);
      }
      socketDir = null;
    }
  }
}
