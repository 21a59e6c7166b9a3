package quiver.spark.harness;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.apache.spark.udf.worker.core.WorkerSecurityScope;
import org.apache.spark.udf.worker.core.direct.DirectWorkerException;
import org.apache.spark.udf.worker.core.direct.DirectWorkerTimeoutException;
import org.junit.jupiter.api.Test;
import scala.Option;

/**
 * Spark's DirectWorkerDispatcher spawning through the harness's readiness check: a worker that
 * cannot start is reported with its exit status and output, one that never serves times out.
 */
class WorkerSpawnTest {
  private static Throwable spawnFailure(List<String> runner, int initTimeoutMs) {
    try (QuiverWorkerDispatcher dispatcher = new QuiverWorkerDispatcher(
        WorkerSpecs.direct(runner, Map.of(), WorkerTransport.UNIX_SOCKET, initTimeoutMs),
        new RecordingLogger())) {
      return assertThrows(RuntimeException.class,
          () -> dispatcher.createSession(Option.<WorkerSecurityScope>empty()));
    }
  }

  @Test
  void aWorkerThatExitsBeforeItIsReadyIsReportedWithItsStatusAndOutput() {
    // sh -c SCRIPT sh --id ID --connection ADDRESS: Spark's arguments become $1..$4.
    Throwable failure = spawnFailure(
        List.of("/bin/sh", "-c", "echo \"unknown flag: $1\" >&2; exit 2", "sh"), 10_000);
    DirectWorkerException error = assertInstanceOf(DirectWorkerException.class, failure);
    assertTrue(error.getMessage().contains("status 2"), error::getMessage);
    assertTrue(error.getMessage().contains("unknown flag: --id"), error::getMessage);
  }

  @Test
  void aWorkerThatNeverServesTimesOutAtTheInitializationTimeout() {
    long started = System.nanoTime();
    Throwable failure = spawnFailure(List.of("/bin/sh", "-c", "sleep 30", "sh"), 500);
    assertInstanceOf(DirectWorkerTimeoutException.class, failure);
    long tookMs = (System.nanoTime() - started) / 1_000_000;
    assertTrue(tookMs < 10_000, "gave up after " + tookMs + " ms, not at once or never");
  }
}
