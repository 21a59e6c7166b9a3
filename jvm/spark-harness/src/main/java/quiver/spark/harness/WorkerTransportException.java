package quiver.spark.harness;

/**
 * The Execute stream failed below the protocol: a gRPC error (the worker died, the connection
 * dropped), the stream ended without a terminator, or the worker broke the message order.
 */
public final class WorkerTransportException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public WorkerTransportException(String message, Throwable cause) {
    super(message, cause);
  }
}
