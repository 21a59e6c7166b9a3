package quiver.spark.harness;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.vector.types.pojo.Schema;
import org.apache.spark.udf.worker.CancelResponse;
import org.apache.spark.udf.worker.DataRequest;
import org.apache.spark.udf.worker.DataResponse;
import org.apache.spark.udf.worker.ExecutionError;
import org.apache.spark.udf.worker.FinishResponse;
import org.apache.spark.udf.worker.InitResponse;
import org.apache.spark.udf.worker.core.Termination;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import scala.collection.Iterator;

/**
 * Spark 4.3.0's own WorkerSession state machine (init → process → close) and
 * DirectWorkerDispatcher drive each quiver worker in Spark's dialect, and check what a Spark
 * task would: the result values, and the Termination Spark settles.
 */
class SparkDialectTest {
  /** Bound on every scenario: a hang is a failure, never a stuck build. */
  private static final Duration SCENARIO_LIMIT = Duration.ofSeconds(90);

  private static Harness start(QuiverWorker worker, WorkerTransport transport) {
    worker.missing().ifPresent(reason -> assumeTrue(false, reason));
    return new Harness(worker, transport);
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(QuiverWorker.class)
  void finishesSeveralBatchesOverAUnixSocket(QuiverWorker worker) {
    assertTimeoutPreemptively(SCENARIO_LIMIT, () -> {
      try (Harness h = start(worker, WorkerTransport.UNIX_SOCKET)) {
        GrpcWorkerSession session = h.newSession();
        InitResponse init = session.init(h.init("add_one", Harness.INT64, Harness.INT64));
        assertFalse(init.hasError(), () -> "InitResponse.error: " + init.getError());
        Schema result = ArrowIpc.readSchemaMessage(init.getData().toByteArray());
        assertEquals(Harness.schema("add_one", Harness.INT64), result,
            "InitResponse.data is the result schema (docs/spark-protocol.md §2)");

        List<DataRequest> input =
            List.of(h.int64Batch(1L, null, -5L), h.int64Range(0, 1000), h.int64Batch(41L));
        List<ArrowIpc.Batch> output = h.drain(session.process(Harness.scalaIterator(input),
            session.process$default$2()));

        assertEquals(3, output.size(), "one DataResponse per DataRequest, in order");
        assertEquals(Arrays.asList(2L, null, -4L), output.get(0).column(0));
        assertEquals(1000, output.get(1).rows());
        assertEquals(1L, output.get(1).column(0).get(0));
        assertEquals(1000L, output.get(1).column(0).get(999));
        assertEquals(List.of(42L), output.get(2).column(0));

        Termination termination = session.close(session.close$default$1());
        FinishResponse finish = assertInstanceOf(Termination.Finished.class, termination).response();
        assertMetrics(finish.getMetricsMap(), 3, 1004);
        assertWorkerExitedCleanly(h, session);
      }
    });
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(QuiverWorker.class)
  void twoTasksAtOnceGetAWorkerEach(QuiverWorker worker) {
    assertTimeoutPreemptively(SCENARIO_LIMIT, () -> {
      try (Harness h = start(worker, WorkerTransport.UNIX_SOCKET)) {
        // Two Spark tasks on one executor: the dispatcher spawns a worker per session.
        java.util.concurrent.ExecutorService tasks =
            java.util.concurrent.Executors.newFixedThreadPool(2);
        try {
          List<java.util.concurrent.Future<List<Object>>> results = new java.util.ArrayList<>();
          for (long base : new long[] {100, 200}) {
            results.add(tasks.submit(() -> {
              GrpcWorkerSession session = h.newSession();
              session.init(h.init("add_one", Harness.INT64, Harness.INT64));
              List<ArrowIpc.Batch> out = h.drain(session.process(
                  Harness.scalaIterator(List.of(h.int64Range(base, 3))),
                  session.process$default$2()));
              assertInstanceOf(Termination.Finished.class,
                  session.close(session.close$default$1()));
              assertWorkerExitedCleanly(h, session);
              return out.get(0).column(0);
            }));
          }
          assertEquals(List.of(101L, 102L, 103L), results.get(0).get());
          assertEquals(List.of(201L, 202L, 203L), results.get(1).get());
        } finally {
          tasks.shutdownNow();
        }
      }
    });
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(QuiverWorker.class)
  void finishesOverLoopbackTcp(QuiverWorker worker) {
    assertTimeoutPreemptively(SCENARIO_LIMIT, () -> {
      try (Harness h = start(worker, WorkerTransport.TCP)) {
        GrpcWorkerSession session = h.newSession();
        InitResponse init = session.init(h.init("upper", Harness.UTF8, Harness.UTF8));
        assertFalse(init.hasError(), () -> "InitResponse.error: " + init.getError());
        List<ArrowIpc.Batch> output = h.drain(session.process(
            Harness.scalaIterator(List.of(h.stringBatch("ada", null, "grace"),
                h.stringBatch("ß-straße", ""))),
            session.process$default$2()));
        assertEquals(2, output.size());
        assertEquals(Arrays.asList("ADA", null, "GRACE"), output.get(0).column(0));
        assertEquals("upper", output.get(0).fields().get(0).getName());
        assertEquals(2, output.get(1).rows());
        assertEquals("", output.get(1).column(0).get(1));

        assertServesIpv6LoopbackToo(session.connection().address());

        Termination termination = session.close(session.close$default$1());
        assertInstanceOf(Termination.Finished.class, termination);
        assertWorkerExitedCleanly(h, session);
      }
    });
  }

  /** worker_spec.proto: a TCP worker is reachable at 127.0.0.1:PORT and at [::1]:PORT. */
  private static void assertServesIpv6LoopbackToo(String port) throws Exception {
    java.net.InetAddress ipv6Loopback = java.net.InetAddress.getByName("::1");
    if (java.net.NetworkInterface.getByInetAddress(ipv6Loopback) == null) {
      return; // this machine has no IPv6 loopback; docs/spark-protocol.md §1 allows that
    }
    io.grpc.ManagedChannel channel = io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder
        .forAddress(new java.net.InetSocketAddress(ipv6Loopback, Integer.parseInt(port)))
        .usePlaintext()
        .build();
    try {
      assertTrue(QuiverWorkerDispatcher.heartbeat(channel, 5000).hasHeartbeat(),
          "the worker answers Manage(Heartbeat) at [::1]:" + port);
    } finally {
      channel.shutdownNow();
    }
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(QuiverWorker.class)
  void takesAPayloadInChunks(QuiverWorker worker) {
    assertTimeoutPreemptively(SCENARIO_LIMIT, () -> {
      try (Harness h = start(worker, WorkerTransport.UNIX_SOCKET)) {
        GrpcWorkerSession session = h.newSession();
        // The reference in three chunks after an Init whose inline payload is empty; size and
        // CRC-32 cover the assembled bytes.
        org.apache.spark.udf.worker.Init whole =
            h.init("add_one", Harness.INT64, Harness.INT64);
        com.google.protobuf.ByteString payload = whole.getUdf().getPayload();
        int third = Math.max(1, payload.size() / 3);
        session.setPayloadChunks(List.of(payload.substring(0, third),
            payload.substring(third, 2 * third), payload.substring(2 * third)));
        org.apache.spark.udf.worker.Init chunked = whole.toBuilder()
            .setIsChunkingPayload(true)
            .setUdf(whole.getUdf().toBuilder().setPayload(com.google.protobuf.ByteString.EMPTY))
            .build();
        InitResponse init = session.init(chunked);
        assertFalse(init.hasError(), () -> "InitResponse.error: " + init.getError());
        List<ArrowIpc.Batch> output = h.drain(session.process(
            Harness.scalaIterator(List.of(h.int64Batch(9L))), session.process$default$2()));
        assertEquals(List.of(10L), output.get(0).column(0));
        assertInstanceOf(Termination.Finished.class, session.close(session.close$default$1()));
        assertWorkerExitedCleanly(h, session);
      }
    });
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(QuiverWorker.class)
  void finishesWithNoInput(QuiverWorker worker) {
    assertTimeoutPreemptively(SCENARIO_LIMIT, () -> {
      try (Harness h = start(worker, WorkerTransport.UNIX_SOCKET)) {
        GrpcWorkerSession session = h.newSession();
        InitResponse init = session.init(h.init("identity", Harness.INT64, Harness.INT64));
        assertFalse(init.hasError(), () -> "InitResponse.error: " + init.getError());
        List<ArrowIpc.Batch> output = h.drain(
            session.process(Harness.scalaIterator(List.of()), session.process$default$2()));
        assertEquals(List.of(), output, "no input, no DataResponse");

        Termination termination = session.close(session.close$default$1());
        FinishResponse finish = assertInstanceOf(Termination.Finished.class, termination).response();
        assertMetrics(finish.getMetricsMap(), 0, 0);
        assertWorkerExitedCleanly(h, session);
      }
    });
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(QuiverWorker.class)
  void aUserErrorFailsTheSessionAfterCancel(QuiverWorker worker) {
    assertTimeoutPreemptively(SCENARIO_LIMIT, () -> {
      try (Harness h = start(worker, WorkerTransport.UNIX_SOCKET)) {
        GrpcWorkerSession session = h.newSession();
        InitResponse init = session.init(h.init("raise_error", Harness.INT64, Harness.INT64));
        assertFalse(init.hasError(), () -> "InitResponse.error: " + init.getError());
        Iterator<DataResponse> output = session.process(
            Harness.scalaIterator(List.of(h.int64Batch(1L, 2L), h.int64Batch(3L))),
            session.process$default$2());

        UdfExecutionException raised =
            assertThrows(UdfExecutionException.class, () -> h.drain(output));
        assertUserError(raised.error());

        // The worker's terminator came after the engine's Cancel (the harness sends it on
        // ErrorResponse): Spark settles Failed with the worker's error.
        Termination termination = session.close(session.close$default$1());
        assertUserError(assertInstanceOf(Termination.Failed.class, termination).error());
        assertWorkerExitedCleanly(h, session);
      }
    });
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(QuiverWorker.class)
  void anInitErrorFailsTheSessionAfterCancel(QuiverWorker worker) {
    assertTimeoutPreemptively(SCENARIO_LIMIT, () -> {
      try (Harness h = start(worker, WorkerTransport.UNIX_SOCKET)) {
        GrpcWorkerSession session = h.newSession();
        InitResponse init = session.init(
            h.init(worker.reference("no_such_udf"), "no_such_udf", Harness.INT64, Harness.INT64));
        assertTrue(init.hasError(), "an unknown function is refused in InitResponse.error");
        ExecutionError error = init.getError();
        assertEquals(ExecutionError.KindCase.WORKER, error.getKindCase(),
            "a UDF that cannot load is a WorkerError (docs/spark-protocol.md §4): " + error);
        assertTrue(error.getWorker().getMessage().contains("no_such_udf"),
            () -> "the error names the function: " + error.getWorker().getMessage());
        // A task that goes on to process anyway: no data is sent, the Cancel the engine owes
        // the worker is, and the output raises the init error.
        UdfExecutionException raised = assertThrows(UdfExecutionException.class,
            () -> h.drain(session.process(Harness.scalaIterator(List.of(h.int64Batch(1L))),
                session.process$default$2())));
        assertEquals(error, raised.error());

        Termination termination = session.close(session.close$default$1());
        assertEquals(error, assertInstanceOf(Termination.Failed.class, termination).error());
        assertWorkerExitedCleanly(h, session);
      }
    });
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(QuiverWorker.class)
  void aCancelMidStreamEndsCancelled(QuiverWorker worker) {
    assertTimeoutPreemptively(SCENARIO_LIMIT, () -> {
      try (Harness h = start(worker, WorkerTransport.UNIX_SOCKET)) {
        GrpcWorkerSession session = h.newSession();
        InitResponse init = session.init(h.init("add_one", Harness.INT64, Harness.INT64));
        assertFalse(init.hasError(), () -> "InitResponse.error: " + init.getError());
        // Two batches, then the input stalls (a Spark task still reading its partition):
        // Finish is never sent, so the worker must answer Cancel with CancelResponse.
        CountDownLatch released = new CountDownLatch(1);
        Iterator<DataResponse> output = session.process(
            Harness.scalaIterator(stallingAfter(List.of(h.int64Batch(1L), h.int64Batch(2L)),
                released)),
            session.process$default$2());
        assertEquals(List.of(2L), h.decode(output.next()).column(0));
        assertEquals(List.of(3L), h.decode(output.next()).column(0));

        Termination termination = session.close(session.close$default$1());
        released.countDown();
        CancelResponse cancel =
            assertInstanceOf(Termination.Cancelled.class, termination).response();
        assertFalse(cancel.hasError(), () -> "CancelResponse.error: " + cancel.getError());
        assertMetrics(cancel.getMetricsMap(), 2, 2);
        assertWorkerExitedCleanly(h, session);
      }
    });
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(QuiverWorker.class)
  void aCancelAfterFinishEndsCancelledOrTooLate(QuiverWorker worker) {
    assertTimeoutPreemptively(SCENARIO_LIMIT, () -> {
      try (Harness h = start(worker, WorkerTransport.UNIX_SOCKET)) {
        GrpcWorkerSession session = h.newSession();
        // Where the worker has a pausing UDF, Cancel arrives while the first batch runs and the
        // worker must answer CancelResponse; otherwise FinishResponse may already be sent, and
        // the Cancel is then ignored (udf_message.proto, Finish).
        java.util.Optional<String> pausing = worker.pausingFunctionReference();
        String reference = pausing.orElse(worker.reference("identity"));
        InitResponse init = session.init(h.init(reference, "later", Harness.INT64, Harness.INT64));
        assertFalse(init.hasError(), () -> "InitResponse.error: " + init.getError());
        CountDownLatch finishSent = new CountDownLatch(1);
        session.process(
            Harness.scalaIterator(List.of(h.int64Batch(1L), h.int64Batch(2L), h.int64Batch(3L))
                .iterator()),
            () -> {
              finishSent.countDown();
              return org.apache.spark.udf.worker.Finish.getDefaultInstance();
            });
        assertTrue(finishSent.await(10, TimeUnit.SECONDS), "Finish was sent");

        Termination termination = session.close(session.close$default$1());
        if (pausing.isPresent()) {
          assertInstanceOf(Termination.Cancelled.class, termination);
        } else {
          assertTrue(termination instanceof Termination.Cancelled
              || termination instanceof Termination.Finished, termination::toString);
        }
        assertWorkerExitedCleanly(h, session);
      }
    });
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(QuiverWorker.class)
  void aWorkerKilledMidBatchIsATransportFailure(QuiverWorker worker) {
    assertTimeoutPreemptively(SCENARIO_LIMIT, () -> {
      try (Harness h = start(worker, WorkerTransport.UNIX_SOCKET)) {
        GrpcWorkerSession session = h.newSession();
        Process process = h.processOf(session);
        // Where the worker has a slow UDF, the kill lands inside it; otherwise it lands once the
        // batch has been handed to gRPC, most likely before its answer is read.
        String reference = worker.slowFunctionReference().orElse(worker.reference("identity"));
        InitResponse init =
            session.init(h.init(reference, "slow", Harness.INT64, Harness.INT64));
        assertFalse(init.hasError(), () -> "InitResponse.error: " + init.getError());
        CountDownLatch handedOver = new CountDownLatch(1);
        CountDownLatch released = new CountDownLatch(1);
        Iterator<DataResponse> output = session.process(
            Harness.scalaIterator(stallingAfter(List.of(h.int64Range(0, 1 << 20)), handedOver,
                released)),
            session.process$default$2());
        assertTrue(handedOver.await(30, TimeUnit.SECONDS), "the batch was handed to gRPC");
        Thread.sleep(200); // the worker is reading or running the batch
        // docs/spark-protocol.md §5: Heartbeat is answered in every state, also inside a UDF.
        assertTrue(QuiverWorkerDispatcher.heartbeat(session.connection().channel(), 5000)
            .hasHeartbeat(), "the worker answers Manage(Heartbeat) while a batch runs");
        process.destroyForcibly();

        WorkerTransportException broken =
            assertThrows(WorkerTransportException.class, () -> h.drain(output));
        assertNotNull(broken.getCause(), "the gRPC error is kept as the cause");
        released.countDown();
        Termination termination = session.close(session.close$default$1());
        assertInstanceOf(Termination.TransportFailed.class, termination);
        assertFalse(session.isWorkerSalvageable(), "Spark must not reuse a dead worker");
        assertEquals(137, process.waitFor(), "the worker died of SIGKILL");
      }
    });
  }

  // ---- helpers ----

  /** Yields {@code batches}, then blocks until {@code released} (or the session's cancel). */
  private static java.util.Iterator<DataRequest> stallingAfter(
      List<DataRequest> batches, CountDownLatch released) {
    return stallingAfter(batches, new CountDownLatch(1), released);
  }

  /** The same, counting {@code handedOver} down once every batch has been taken. */
  private static java.util.Iterator<DataRequest> stallingAfter(
      List<DataRequest> batches, CountDownLatch handedOver, CountDownLatch released) {
    java.util.Iterator<DataRequest> it = batches.iterator();
    return new java.util.Iterator<>() {
      @Override
      public boolean hasNext() {
        if (it.hasNext()) {
          return true;
        }
        handedOver.countDown();
        awaitQuietly(released);
        return false;
      }

      @Override
      public DataRequest next() {
        return it.next();
      }
    };
  }

  private static void awaitQuietly(CountDownLatch latch) {
    try {
      latch.await(60, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static void assertUserError(ExecutionError error) {
    assertEquals(ExecutionError.KindCase.USER, error.getKindCase(), () -> "a UserError: " + error);
    assertTrue(error.getUser().getMessage().contains("raise_error always fails"),
        () -> "the UDF's message is kept: " + error.getUser().getMessage());
  }

  /** docs/spark-protocol.md §6: the per-execution metrics, as decimal strings. */
  private static void assertMetrics(Map<String, String> metrics, long batches, long rows) {
    for (String key : List.of("rows_in", "rows_out", "batches_in", "batches_out", "bytes_in",
        "bytes_out", "udf_time_ns", "codec_time_ns", "peak_rss_bytes")) {
      assertTrue(metrics.containsKey(key), () -> "metrics carry " + key + ": " + metrics);
      Long.parseLong(metrics.get(key));
    }
    assertEquals(Long.toString(batches), metrics.get("batches_in"), metrics::toString);
    assertEquals(Long.toString(batches), metrics.get("batches_out"), metrics::toString);
    assertEquals(Long.toString(rows), metrics.get("rows_in"), metrics::toString);
    assertEquals(Long.toString(rows), metrics.get("rows_out"), metrics::toString);
  }

  /**
   * Spark's close released the worker with SIGTERM; docs/spark-protocol.md §1 has it exit 0,
   * and Spark's classes logged no complaint about the session.
   */
  private static void assertWorkerExitedCleanly(Harness h, GrpcWorkerSession session)
      throws InterruptedException {
    Process process = h.processOf(session);
    assertTrue(process.waitFor(10, TimeUnit.SECONDS), "the worker exits after Spark's close");
    assertEquals(0, process.exitValue(), "a worker ends with status 0 on SIGTERM");
    assertEquals(List.of(), h.logger.warnings, "Spark's WorkerSession logged no warning");
  }
}
