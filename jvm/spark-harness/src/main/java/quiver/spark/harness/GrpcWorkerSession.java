package quiver.spark.harness;

import com.google.protobuf.ByteString;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ClientResponseObserver;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.apache.spark.udf.worker.Cancel;
import org.apache.spark.udf.worker.CancelResponse;
import org.apache.spark.udf.worker.DataRequest;
import org.apache.spark.udf.worker.DataResponse;
import org.apache.spark.udf.worker.ExecutionError;
import org.apache.spark.udf.worker.Finish;
import org.apache.spark.udf.worker.FinishResponse;
import org.apache.spark.udf.worker.Init;
import org.apache.spark.udf.worker.InitResponse;
import org.apache.spark.udf.worker.PayloadChunk;
import org.apache.spark.udf.worker.UdfControlRequest;
import org.apache.spark.udf.worker.UdfControlResponse;
import org.apache.spark.udf.worker.UdfRequest;
import org.apache.spark.udf.worker.UdfResponse;
import org.apache.spark.udf.worker.core.Termination;
import org.apache.spark.udf.worker.core.WorkerHandle;
import org.apache.spark.udf.worker.core.WorkerLogger;
import org.apache.spark.udf.worker.core.WorkerSession;
import org.apache.spark.udf.worker.core.WorkerSession$SessionState$Cancelling$;
import org.apache.spark.udf.worker.core.WorkerSession$SessionState$Created$;
import org.apache.spark.udf.worker.core.WorkerSession$SessionState$Finishing$;
import org.apache.spark.udf.worker.core.WorkerSession$SessionState$Streaming$;
import scala.Function0;
import scala.collection.AbstractIterator;
import scala.collection.Iterator;

/**
 * Spark's released {@link WorkerSession} over one gRPC {@code Execute} stream, written from
 * udf_message.proto's ordering rules:
 *
 * <ul>
 *   <li>{@code init} sends {@code Init} and waits for the one {@code InitResponse};
 *   <li>{@code process} sends the input batches from a sender thread (respecting gRPC flow
 *       control), then {@code Finish}, and returns the worker's {@code DataResponse}s as they
 *       come; after an {@code ErrorResponse} it sends {@code Cancel} itself, as the engine must;
 *   <li>{@code close} sends {@code Cancel} unless a terminator has arrived, waits for it, and
 *       only then half-closes the request stream.
 * </ul>
 *
 * <p>Spark's {@link Termination} is settled as: {@code FinishResponse} → Finished (Failed if it
 * carries an error); {@code CancelResponse} → Failed with the first error the worker reported
 * ({@code InitResponse.error}, {@code ErrorResponse}, the response's own), else Cancelled; a
 * gRPC error, a stream ending without a terminator, a message out of order or a worker silent
 * past the terminator timeout → TransportFailed.
 */
public final class GrpcWorkerSession extends WorkerSession {
  /** How long the worker may take to answer Init (a Python worker imports its UDF then). */
  static final long INIT_TIMEOUT_MS = 60_000;
  /** How long the worker may take to send its terminator once Cancel is sent. */
  static final long TERMINATOR_TIMEOUT_MS = 30_000;

  private static final long POLL_MS = 50;

  /** One thing the response stream delivered: a message, a gRPC error, or its end. */
  private record Event(UdfResponse response, Throwable error) {
    boolean isEnd() {
      return response == null && error == null;
    }
  }

  private final GrpcWorkerConnection connection;
  private final BlockingQueue<Event> events = new LinkedBlockingQueue<>();
  private final Object sendLock = new Object();
  private ClientCallStreamObserver<UdfRequest> requests;
  private boolean finishSent;
  private boolean cancelSent;
  private volatile long cancelSentAt;
  private boolean halfClosed;
  private volatile ExecutionError firstWorkerError;
  private volatile Thread sender;
  private volatile Throwable inputFailure;
  private List<ByteString> payloadChunks = List.of();

  GrpcWorkerSession(WorkerHandle handle, WorkerLogger logger, GrpcWorkerConnection connection) {
    super(handle, logger);
    this.connection = connection;
  }

  public GrpcWorkerConnection connection() {
    return connection;
  }

  // ---- init ----

  /**
   * Delivers the UDF payload's bytes as PayloadChunk messages after Init (for an Init with
   * {@code is_chunking_payload}), the last one marked {@code last}. Spark's WorkerSession takes
   * only the Init, so the chunks are handed over before {@code init}.
   */
  public void setPayloadChunks(List<ByteString> chunks) {
    payloadChunks = List.copyOf(chunks);
  }

  @Override
  public InitResponse doInit(Init init) {
    openStream();
    send(UdfRequest.newBuilder()
        .setControl(UdfControlRequest.newBuilder().setInit(init))
        .build());
    for (int i = 0; i < payloadChunks.size(); i++) {
      PayloadChunk.Builder chunk = PayloadChunk.newBuilder().setData(payloadChunks.get(i));
      if (i == payloadChunks.size() - 1) {
        chunk.setLast(true);
      }
      send(UdfRequest.newBuilder()
          .setControl(UdfControlRequest.newBuilder().setPayload(chunk))
          .build());
    }
    Event event = poll(INIT_TIMEOUT_MS);
    if (event == null) {
      throw fail("the worker sent no InitResponse within " + INIT_TIMEOUT_MS + " ms", null);
    }
    if (event.error() != null) {
      throw fail("the Execute stream failed before InitResponse", event.error());
    }
    if (event.isEnd()) {
      throw fail("the worker ended the Execute stream before InitResponse", null);
    }
    UdfResponse response = event.response();
    if (!response.hasControl() || !response.getControl().hasInit()) {
      throw fail("the worker's first message is " + describe(response)
          + ", but InitResponse must precede every other", null);
    }
    InitResponse answer = response.getControl().getInit();
    if (answer.hasError()) {
      firstWorkerError = answer.getError();
    }
    return answer;
  }

  private void openStream() {
    ClientCall<UdfRequest, UdfResponse> call =
        connection.channel().newCall(UdfWorkerService.EXECUTE, CallOptions.DEFAULT);
    ClientCalls.asyncBidiStreamingCall(call, new ResponseObserver());
  }

  private final class ResponseObserver implements ClientResponseObserver<UdfRequest, UdfResponse> {
    @Override
    public void beforeStart(ClientCallStreamObserver<UdfRequest> stream) {
      requests = stream;
      stream.setOnReadyHandler(() -> {
        synchronized (sendLock) {
          sendLock.notifyAll();
        }
      });
    }

    @Override
    public void onNext(UdfResponse response) {
      events.add(new Event(response, null));
    }

    @Override
    public void onError(Throwable error) {
      events.add(new Event(null, error));
    }

    @Override
    public void onCompleted() {
      events.add(new Event(null, null));
    }
  }

  // ---- process ----

  @Override
  public Iterator<DataResponse> doProcess(Iterator<DataRequest> input, Function0<Finish> finish) {
    if (firstWorkerError != null) {
      // Init failed: no data may follow; the engine's Cancel ends the stream, and the output
      // then throws the init error.
      sendCancel(Cancel.newBuilder().setReason("init failed").build());
    } else {
      Thread thread = new Thread(() -> sendInput(input, finish), "udf-input-" + workerHandle().id());
      thread.setDaemon(true);
      sender = thread;
      thread.start();
    }
    return new Output();
  }

  /** Sends every input batch as gRPC flow control allows, then Finish; stops at Cancel. */
  private void sendInput(Iterator<DataRequest> input, Function0<Finish> finish) {
    try {
      while (input.hasNext()) {
        DataRequest batch = input.next();
        synchronized (sendLock) {
          while (!cancelSent && !requests.isReady()) {
            sendLock.wait(POLL_MS);
          }
          if (cancelSent) {
            return;
          }
          requests.onNext(UdfRequest.newBuilder().setData(batch).build());
        }
      }
      synchronized (sendLock) {
        if (cancelSent) {
          return;
        }
        finishSent = true;
        compareAndSetState(
            WorkerSession$SessionState$Streaming$.MODULE$,
            WorkerSession$SessionState$Finishing$.MODULE$);
        requests.onNext(UdfRequest.newBuilder()
            .setControl(UdfControlRequest.newBuilder().setFinish(finish.apply()))
            .build());
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (RuntimeException e) {
      // The engine's own input failed (a Spark task's upstream): the session is cancelled.
      inputFailure = e;
      sendCancel(Cancel.newBuilder().setReason("the input failed: " + e).build());
    }
  }

  /** The worker's DataResponses, in order; throws when the session ends in an error. */
  private final class Output extends AbstractIterator<DataResponse> {
    private DataResponse next;

    @Override
    public boolean hasNext() {
      while (next == null && !currentState().isTerminal()) {
        Event event = poll(POLL_MS);
        if (event != null) {
          next = handle(event);
        } else if (cancelSent && terminatorOverdue()) {
          fail("the worker sent no CancelResponse within " + TERMINATOR_TIMEOUT_MS + " ms of Cancel",
              null);
        }
      }
      if (next != null) {
        return true;
      }
      throwIfFailed(settledTermination());
      return false;
    }

    @Override
    public DataResponse next() {
      if (!hasNext()) {
        throw new java.util.NoSuchElementException("the worker sent no more data");
      }
      DataResponse out = next;
      next = null;
      return out;
    }
  }

  private boolean terminatorOverdue() {
    return System.nanoTime() - cancelSentAt > TimeUnit.MILLISECONDS.toNanos(TERMINATOR_TIMEOUT_MS);
  }

  private void throwIfFailed(Termination termination) {
    if (termination instanceof Termination.Failed failed) {
      throw new UdfExecutionException(failed.error());
    }
    if (termination instanceof Termination.TransportFailed broken) {
      throw new WorkerTransportException(
          "the Execute stream with worker " + workerHandle().id() + " failed", broken.cause());
    }
  }

  /**
   * Applies one event of the response stream to the session: returns the DataResponse to hand
   * on, or null; settles Spark's Termination on a terminator or a failure.
   */
  private synchronized DataResponse handle(Event event) {
    if (currentState().isTerminal()) {
      return null;
    }
    if (event.error() != null) {
      fail("the Execute stream failed", event.error());
      return null;
    }
    if (event.isEnd()) {
      fail("the worker ended the Execute stream without FinishResponse or CancelResponse", null);
      return null;
    }
    UdfResponse response = event.response();
    if (response.hasData()) {
      if (firstWorkerError != null) {
        fail("the worker sent a DataResponse after reporting an error", null);
        return null;
      }
      return response.getData();
    }
    UdfControlResponse control = response.getControl();
    switch (control.getControlCase()) {
      case ERROR:
        if (firstWorkerError != null) {
          fail("the worker sent a second ErrorResponse (the .proto allows one per stream)", null);
          return null;
        }
        firstWorkerError = control.getError().getError();
        // The terminator after an ErrorResponse is always CancelResponse, which the engine
        // asks for (udf_message.proto, ordering invariants).
        sendCancel(Cancel.newBuilder().setReason("the worker reported an error").build());
        return null;
      case FINISH:
        settleFinished(control.getFinish());
        return null;
      case CANCEL:
        settleCancelled(control.getCancel());
        return null;
      default:
        fail("the worker sent " + describe(response) + " after InitResponse", null);
        return null;
    }
  }

  private void settleFinished(FinishResponse response) {
    if (!finishSent) {
      fail("the worker sent FinishResponse before the engine sent Finish", null);
      return;
    }
    if (firstWorkerError != null) {
      fail("the worker sent FinishResponse after an error (the terminator must be CancelResponse)",
          null);
      return;
    }
    completeTerminal(response.hasError()
        ? new Termination.Failed(response.getError())
        : new Termination.Finished(response));
    halfClose();
  }

  private void settleCancelled(CancelResponse response) {
    if (!cancelSent) {
      fail("the worker sent CancelResponse before the engine sent Cancel", null);
      return;
    }
    ExecutionError error = firstWorkerError != null ? firstWorkerError
        : response.hasError() ? response.getError() : null;
    completeTerminal(error != null
        ? new Termination.Failed(error)
        : new Termination.Cancelled(response));
    halfClose();
  }

  // ---- close ----

  @Override
  public Termination doClose(Function0<Cancel> cancel) {
    if (currentState() == WorkerSession$SessionState$Created$.MODULE$) {
      // init was never called: no stream exists, nothing to cancel.
      completeTerminal(new Termination.Cancelled(CancelResponse.getDefaultInstance()));
      return settledTermination();
    }
    if (!currentState().isTerminal()) {
      sendCancel(cancel.apply());
      while (!currentState().isTerminal()) {
        Event event = poll(POLL_MS);
        if (event != null) {
          handle(event); // data after Cancel is dropped
        } else if (terminatorOverdue()) {
          fail("the worker sent no terminator within " + TERMINATOR_TIMEOUT_MS + " ms of Cancel",
              null);
        }
      }
    }
    stopSender();
    halfClose();
    return settledTermination();
  }

  // ---- sending ----

  private void send(UdfRequest request) {
    synchronized (sendLock) {
      requests.onNext(request);
    }
  }

  /** Sends Cancel once; never after a terminator, and Finish never follows it. */
  private void sendCancel(Cancel cancel) {
    synchronized (sendLock) {
      if (cancelSent || halfClosed || currentState().isTerminal()) {
        return;
      }
      cancelSent = true;
      cancelSentAt = System.nanoTime();
      var state = currentState();
      compareAndSetState(state, WorkerSession$SessionState$Cancelling$.MODULE$);
      requests.onNext(UdfRequest.newBuilder()
          .setControl(UdfControlRequest.newBuilder().setCancel(cancel))
          .build());
      sendLock.notifyAll();
    }
  }

  /** Half-closes the request stream: only once the session's outcome is known. */
  private void halfClose() {
    synchronized (sendLock) {
      if (halfClosed || requests == null) {
        return;
      }
      halfClosed = true;
      boolean broken = currentState().isTerminal()
          && settledTermination() instanceof Termination.TransportFailed;
      if (broken) {
        requests.cancel("the session failed", null);
      } else {
        requests.onCompleted();
      }
      sendLock.notifyAll();
    }
  }

  private void stopSender() {
    Thread thread = sender;
    if (thread != null && thread.isAlive()) {
      thread.interrupt();
    }
  }

  // ---- helpers ----

  private Event poll(long timeoutMs) {
    try {
      return events.poll(timeoutMs, TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw fail("interrupted while waiting for the worker", e);
    }
  }

  /** Settles TransportFailed (if nothing settled yet), cancels the call, returns the reason. */
  private WorkerTransportException fail(String message, Throwable cause) {
    WorkerTransportException failure = new WorkerTransportException(
        message + " (worker " + workerHandle().id() + ", " + connection.address() + ")", cause);
    completeTerminal(new Termination.TransportFailed(failure));
    halfClose();
    stopSender();
    return failure;
  }

  /** The error of the input iterator, when the engine's own input failed. */
  public Throwable inputFailure() {
    return inputFailure;
  }

  private static String describe(UdfResponse response) {
    return response.hasData() ? "a DataResponse" : response.getControl().getControlCase().toString();
  }
}
