package quiver.spark.harness;

import java.util.List;
import java.util.Map;
import org.apache.spark.udf.worker.DirectWorker;
import org.apache.spark.udf.worker.LocalTcpConnection;
import org.apache.spark.udf.worker.ProcessCallable;
import org.apache.spark.udf.worker.UDFProtoCommunicationPattern;
import org.apache.spark.udf.worker.UDFWorkerDataFormat;
import org.apache.spark.udf.worker.UDFWorkerProperties;
import org.apache.spark.udf.worker.UDFWorkerSpecification;
import org.apache.spark.udf.worker.UnixDomainSocket;
import org.apache.spark.udf.worker.WorkerCapabilities;
import org.apache.spark.udf.worker.WorkerConnectionSpec;
import org.apache.spark.udf.worker.WorkerEnvironment;

/** The {@link UDFWorkerSpecification} a Spark user writes for a quiver worker. */
public final class WorkerSpecs {
  private WorkerSpecs() {}

  /**
   * A DirectWorker whose runner is {@code command} (Spark appends {@code --id} and
   * {@code --connection}); the worker speaks Arrow over bidirectional streaming.
   */
  public static UDFWorkerSpecification direct(
      List<String> command, Map<String, String> environment, WorkerTransport transport) {
    return direct(command, environment, transport, 30_000);
  }

  /** The same, with the time the worker has to become ready. */
  public static UDFWorkerSpecification direct(List<String> command,
      Map<String, String> environment, WorkerTransport transport, int initializationTimeoutMs) {
    WorkerConnectionSpec.Builder connection = WorkerConnectionSpec.newBuilder();
    if (transport == WorkerTransport.UNIX_SOCKET) {
      connection.setUnixDomainSocket(UnixDomainSocket.getDefaultInstance());
    } else {
      connection.setTcp(LocalTcpConnection.getDefaultInstance());
    }
    return UDFWorkerSpecification.newBuilder()
        .setEnvironment(WorkerEnvironment.getDefaultInstance())
        .setCapabilities(WorkerCapabilities.newBuilder()
            .addSupportedDataFormats(UDFWorkerDataFormat.ARROW)
            .addSupportedCommunicationPatterns(
                UDFProtoCommunicationPattern.BIDIRECTIONAL_STREAMING)
            .setSupportsConcurrentUdfs(true)
            .setSupportsReuse(true))
        .setDirect(DirectWorker.newBuilder()
            .setRunner(ProcessCallable.newBuilder()
                .addAllCommand(command)
                .putAllEnvironmentVariables(environment))
            .setProperties(UDFWorkerProperties.newBuilder()
                .setInitializationTimeoutMs(initializationTimeoutMs)
                .setGracefulTerminationTimeoutMs(5_000)
                .setConnection(connection)))
        .build();
  }
}
