package quiver.spark.harness;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import org.apache.spark.udf.worker.DataRequest;
import org.apache.spark.udf.worker.DataResponse;
import org.apache.spark.udf.worker.InitResponse;
import org.apache.spark.udf.worker.core.Termination;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import scala.collection.Iterator;

/**
 * The harness's own per-batch time with each worker, through Spark's WorkerSession: a batch is
 * handed to {@code process}'s input and its DataResponse read back before the next is sent (a
 * round trip, not a pipeline). Prints the median of several; run on request (tag "bench").
 */
@Tag("bench")
class PerBatchTimeBench {
  private static final int ONE_MIB_ROWS = (1 << 20) / Long.BYTES;

  @ParameterizedTest(name = "{0}")
  @EnumSource(QuiverWorker.class)
  void perBatchTime(QuiverWorker worker) throws InterruptedException {
    if (worker.missing().isPresent()) {
      System.out.println("spark harness per-batch time: " + worker.missing().get());
      return;
    }
    boolean jvmCold = true;
    for (WorkerTransport transport : WorkerTransport.values()) {
      try (Harness h = new Harness(worker, transport)) {
        GrpcWorkerSession session = h.newSession();
        InitResponse init = session.init(h.init("identity", Harness.INT64, Harness.INT64));
        assertFalse(init.hasError(), () -> "InitResponse.error: " + init.getError());
        LockStep lockStep = new LockStep();
        Iterator<DataResponse> output =
            session.process(Harness.scalaIterator(lockStep), session.process$default$2());

        // The first session also warms the JVM (JIT) up, so it gets a longer warm-up.
        double oneRowMs = medianMs(lockStep, output, h.int64Batch(7L), jvmCold ? 2000 : 200, 500);
        jvmCold = false;
        double oneMibMs = medianMs(lockStep, output, h.int64Range(0, ONE_MIB_ROWS), 5, 30);
        lockStep.end();
        while (output.hasNext()) {
          output.next();
        }
        assertEquals(Termination.Finished.class,
            session.close(session.close$default$1()).getClass());
        System.out.println(String.format(Locale.ROOT,
            "spark harness per-batch time, %s worker, %s: 1-row round trip median %.3f ms; "
                + "1 MiB int64 batch median %.2f ms (%.0f MiB/s)",
            worker, transport, oneRowMs, oneMibMs, 1000.0 / oneMibMs));
      }
    }
  }

  /** Sends {@code batch} warmup + runs times, one at a time; the median round trip in ms. */
  private static double medianMs(LockStep lockStep, Iterator<DataResponse> output,
      DataRequest batch, int warmup, int runs) throws InterruptedException {
    List<Double> times = new ArrayList<>();
    for (int i = 0; i < warmup + runs; i++) {
      long started = System.nanoTime();
      lockStep.send(batch);
      output.next();
      if (i >= warmup) {
        times.add((System.nanoTime() - started) / 1e6);
      }
    }
    Collections.sort(times);
    return times.get(times.size() / 2);
  }

  /** An input iterator that yields what the benchmark hands it, one batch at a time. */
  private static final class LockStep implements java.util.Iterator<DataRequest> {
    private static final DataRequest END = DataRequest.getDefaultInstance();
    private final BlockingQueue<DataRequest> inbox = new LinkedBlockingQueue<>();
    private DataRequest next;

    void send(DataRequest batch) throws InterruptedException {
      inbox.put(batch);
    }

    void end() throws InterruptedException {
      inbox.put(END);
    }

    @Override
    public boolean hasNext() {
      if (next == null) {
        try {
          next = inbox.take();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return false;
        }
      }
      return next != END;
    }

    @Override
    public DataRequest next() {
      hasNext();
      DataRequest out = next;
      next = null;
      return out;
    }
  }
}
