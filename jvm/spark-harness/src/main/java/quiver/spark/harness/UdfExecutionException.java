package quiver.spark.harness;

import org.apache.spark.udf.worker.ExecutionError;

/** An error the worker reported in-band (InitResponse.error, ErrorResponse, a terminator's). */
public final class UdfExecutionException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private final transient ExecutionError error;

  public UdfExecutionException(ExecutionError error) {
    super(describe(error));
    this.error = error;
  }

  public ExecutionError error() {
    return error;
  }

  /** "UserError ValueError: message" and the like: the kind, then what the worker said. */
  public static String describe(ExecutionError error) {
    switch (error.getKindCase()) {
      case USER:
        return "UserError " + error.getUser().getErrorClass() + ": " + error.getUser().getMessage();
      case WORKER:
        return "WorkerError: " + error.getWorker().getMessage();
      case PROTOCOL:
        return "ProtocolError: " + error.getProtocol().getMessage();
      default:
        return "ExecutionError with no kind set (the .proto requires exactly one)";
    }
  }
}
