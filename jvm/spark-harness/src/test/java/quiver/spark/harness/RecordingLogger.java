package quiver.spark.harness;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.spark.udf.worker.core.WorkerLogger;
import scala.Function0;

/** Spark's WorkerLogger keeping the warnings, so a test can show none were logged. */
final class RecordingLogger implements WorkerLogger {
  final List<String> warnings = new CopyOnWriteArrayList<>();

  @Override
  public void warn(Function0<String> message) {
    warnings.add(message.apply());
  }

  @Override
  public void warn(Function0<String> message, Throwable error) {
    warnings.add(message.apply() + ": " + error);
  }

  @Override
  public void info(Function0<String> message) {}

  @Override
  public void info(Function0<String> message, Throwable error) {}

  @Override
  public void debug(Function0<String> message) {}

  @Override
  public void debug(Function0<String> message, Throwable error) {}
}
