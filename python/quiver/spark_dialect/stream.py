"""One ``Execute`` stream of Spark's dialect: its state machine (docs/spark-protocol.md, 2-4).

The stream reads the engine's requests ahead on a thread of its own (quiver.v1's
:class:`~quiver.transport.inbox.Inbox`), so that batches queued before a ``Cancel`` are dropped,
and runs the one UDF on the gRPC thread that yields the answers. What a batch goes through
(decoding, the UDF, result checks, encoding) is quiver.v1's
:class:`~quiver.worker.execution.Execution`; this module only orders Spark's messages around it.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterator

import grpc
import pyarrow as pa

from quiver.protocol.items import UndecodableMessage
from quiver.spark_dialect.batches import SeveralBatches, SparkBatchDecoder
from quiver.spark_dialect.codec import (
    EngineCancel,
    IncomingData,
    OutgoingData,
    SparkItem,
    response,
)
from quiver.spark_dialect.init import PendingInit
from quiver.spark_dialect.messages import spb
from quiver.transport.inbox import END, Inbox, StopRequest
from quiver.worker.errors import ExecutionError, ProtocolViolation, WorkerFailure
from quiver.worker.execution import Execution, peak_rss_bytes

SHUTTING_DOWN = "the worker is shutting down"
HALF_CLOSED = "the request stream ended without Finish or Cancel"
# The per-execution metrics keys (docs/spark-protocol.md, section 6), summed worker-wide.
SUMMED_KEYS = (
    "rows_in",
    "rows_out",
    "batches_in",
    "batches_out",
    "bytes_in",
    "bytes_out",
    "udf_time_ns",
    "codec_time_ns",
)


class Phase(enum.Enum):
    """Where a stream is: before Init, receiving chunks, in the data phase, failed, over."""

    AWAIT_INIT = "awaiting Init"
    CHUNKING = "receiving PayloadChunks"
    DATA = "data phase"
    FAILED = "failed, awaiting Cancel"
    ENDED = "ended"


class ExecuteStream:
    """Serve one Execute stream: Init, PayloadChunk*, DataRequest*, Finish and/or Cancel."""

    def __init__(
        self,
        requests: Iterator[SparkItem],
        context: grpc.ServicerContext,
        log: logging.Logger,
        on_end: Callable[[ExecuteStream], None],
    ) -> None:
        """Prepare the stream; :meth:`run` serves it, then calls ``on_end``."""
        self.context = context
        self.log = log
        self.inbox = Inbox(requests, log, "quiver-spark-reader")  # type: ignore[arg-type]
        self.on_end = on_end
        self.phase = Phase.AWAIT_INIT
        self.pending: PendingInit | None = None
        self.chunked = False  # whether Init announced PayloadChunks
        self.execution: Execution | None = None
        self.outbox: list[spb.UdfResponse | OutgoingData] = []
        self.counts = dict.fromkeys(("batches_in", "batches_out", "bytes_in", "bytes_out"), 0)
        self._lock = threading.Lock()  # metrics() is read by Manage's heartbeat thread
        if not context.add_callback(self.inbox.close):
            self.inbox.close()  # the call is already over

    # ---- serving ----

    def request_stop(self, reason: str) -> None:
        """Ask the stream to end from the worker's side (Shutdown, SIGTERM)."""
        self.inbox.request_stop(reason)

    def run(self) -> Iterator[spb.UdfResponse | OutgoingData]:
        """Yield the answers until the stream's terminator was sent or the requests ended."""
        self.inbox.start()
        try:
            while self.phase is not Phase.ENDED:
                item = self.inbox.get()
                if item is END:
                    self._on_requests_ended()
                else:
                    self._handle(item)  # type: ignore[arg-type]
                yield from self._drain()
                if item is END:
                    return
        finally:
            self.inbox.close()
            self._close_execution()
            self.on_end(self)

    def metrics(self) -> dict[str, int]:
        """Return the stream's figures so far (docs/spark-protocol.md, section 6)."""
        with self._lock:
            figures = dict(self.counts)
            execution = self.execution
            if execution is not None:
                m = execution.metrics
                figures.update(
                    rows_in=m.rows_in,
                    rows_out=m.rows_out,
                    udf_time_ns=m.udf_nanos,
                    codec_time_ns=m.codec_nanos,
                )
        for key in SUMMED_KEYS:
            figures.setdefault(key, 0)
        return figures

    # ---- requests ----

    def _handle(self, item: SparkItem | StopRequest) -> None:
        """Act on one request; a failure of the worker's own code becomes a WorkerError."""
        try:
            self._dispatch(item)
        except Exception as exc:
            self.log.exception("unexpected failure on an Execute stream")
            self._protocol_failure(WorkerFailure(f"the worker failed: {type(exc).__name__}: {exc}"))

    def _dispatch(self, item: SparkItem | StopRequest) -> None:
        """Hand one request to the handler of its kind."""
        if isinstance(item, IncomingData):
            self._on_data(item.data)
        elif isinstance(item, EngineCancel):
            self._on_cancel(item.reason)
        elif isinstance(item, StopRequest):
            self._on_stop(item.reason)
        elif isinstance(item, UndecodableMessage):
            self._protocol_failure(ProtocolViolation(item.reason))
        else:
            kind = item.control.WhichOneof("control") if item.HasField("control") else None
            if kind == "init":
                self._on_init(item.control.init)
            elif kind == "payload":
                self._on_chunk(item.control.payload)
            elif kind == "finish":
                self._on_finish()
            else:
                self._protocol_failure(
                    ProtocolViolation("a UdfRequest holds no request (unknown or empty oneof)")
                )

    def _on_init(self, init: spb.Init) -> None:
        """Start the execution: load the UDF now, or once its last payload chunk arrived."""
        if self.phase is not Phase.AWAIT_INIT:
            self._protocol_failure(ProtocolViolation(f"a second Init ({self.phase.value})"))
            return
        self.pending = PendingInit(init)
        self.chunked = self.pending.chunked
        if self.chunked:
            self.phase = Phase.CHUNKING
        else:
            self._load()

    def _on_chunk(self, chunk: spb.PayloadChunk) -> None:
        """Append a payload chunk; load the UDF after the one marked last."""
        if self.phase is Phase.CHUNKING:
            assert self.pending is not None
            if self.pending.add_chunk(chunk):
                self._load()
            return
        if self.phase is Phase.AWAIT_INIT:
            problem = "a PayloadChunk before Init"
        elif not self.chunked:
            problem = "a PayloadChunk, but Init did not set is_chunking_payload"
        else:
            problem = "a PayloadChunk after the one marked last"
        self._protocol_failure(ProtocolViolation(problem))

    def _on_data(self, data: memoryview) -> None:
        """Answer one DataRequest with one DataResponse per record batch, in order."""
        with self._lock:
            self.counts["batches_in"] += 1
            self.counts["bytes_in"] += data.nbytes
        if self.phase is Phase.FAILED:
            return  # after an error, batches are not answered until Cancel
        if self.phase is not Phase.DATA:
            self._protocol_failure(ProtocolViolation("a DataRequest before InitResponse"))
            return
        if self.inbox.cancel_ahead():
            self.log.debug("dropping a DataRequest: a Cancel follows it")
            return
        execution = self._execution()
        try:
            try:
                self._send_result(execution.run_batch(pa.py_buffer(data)))
            except SeveralBatches as several:
                for batch in several.batches:
                    self._send_result(execution.run_batch(batch))  # type: ignore[arg-type]
        except ExecutionError as exc:
            self._fail(exc)

    def _on_finish(self) -> None:
        """Drain the UDF (iterator UDFs end here) and answer FinishResponse."""
        if self.phase is Phase.FAILED:
            return  # the engine owes a Cancel (Cancel-after-Finish)
        if self.phase is not Phase.DATA:
            self._protocol_failure(ProtocolViolation("Finish before InitResponse"))
            return
        if self.inbox.cancel_ahead():
            return  # a Cancel follows before FinishResponse: it is answered instead
        try:
            self._execution().finish()
        except ExecutionError as exc:
            self._fail(exc)
            return
        self._end(response(finish=spb.FinishResponse(metrics=self._metrics_text())))

    def _on_cancel(self, reason: str) -> None:
        """Answer CancelResponse, whatever the phase; queued batches were dropped."""
        self.log.debug("Cancel: %s", reason or "(no reason given)")
        self._end(response(cancel=spb.CancelResponse(metrics=self._metrics_text())))

    def _on_stop(self, reason: str) -> None:
        """End the stream from the worker's side: an error, then CancelResponse."""
        error = WorkerFailure(reason)
        cancel = spb.CancelResponse(metrics=self._metrics_text())
        if self.phase is Phase.DATA:
            self._send_error(error)
        elif self.phase is not Phase.FAILED:
            cancel.error.CopyFrom(to_spark_error(error))  # no InitResponse yet
        self._end(response(cancel=cancel))

    def _on_requests_ended(self) -> None:
        """The engine half-closed (treated as Cancel) or the stream broke (nothing is sent)."""
        error = self.inbox.error
        if error is not None or not self.context.is_active():
            if error is not None and not isinstance(error, grpc.RpcError):
                self.log.warning("reading an Execute stream failed: %r", error)
            self.log.info("an Execute stream broke; its execution is dropped")
            self.outbox.clear()
            self.phase = Phase.ENDED
            return
        cancel = spb.CancelResponse(metrics=self._metrics_text())
        cancel.error.CopyFrom(to_spark_error(ProtocolViolation(HALF_CLOSED)))
        self.log.warning("%s (%s)", HALF_CLOSED, self.phase.value)
        self._end(response(cancel=cancel))

    # ---- answers and transitions ----

    def _load(self) -> None:
        """Translate the Init, load the UDF, and answer InitResponse (data or error)."""
        assert self.pending is not None
        init = self.pending.init
        self.log.debug("Init of %r, task context %s", init.udf.name, dict(init.task_context))
        try:
            quiver_init, input_schema = self.pending.translate()
            execution = Execution(quiver_init, self.log)
            execution.decoder = SparkBatchDecoder(input_schema)
            result_schema = execution.load()
        except ExecutionError as exc:
            self._init_failed(exc)
            return
        self.pending = None  # the payload's bytes are the execution's now
        with self._lock:
            self.execution = execution
        self.phase = Phase.DATA
        self.outbox.append(response(init=spb.InitResponse(data=result_schema)))

    def _send_result(self, pieces: list[bytes | pa.Buffer]) -> None:
        """Queue one DataResponse."""
        with self._lock:
            self.counts["batches_out"] += 1
            self.counts["bytes_out"] += sum(memoryview(piece).nbytes for piece in pieces)
        self.outbox.append(OutgoingData(tuple(pieces)))

    def _protocol_failure(self, exc: ExecutionError) -> None:
        """Report a message out of order where the .proto says: InitResponse or ErrorResponse."""
        if self.phase in (Phase.AWAIT_INIT, Phase.CHUNKING):
            self._init_failed(exc)
        elif self.phase is Phase.DATA:
            self._fail(exc)
        else:
            self.log.warning("ignored (%s): %s", self.phase.value, exc)

    def _init_failed(self, exc: ExecutionError) -> None:
        """Answer InitResponse carrying the error; the engine then sends Cancel."""
        self.log.warning("Init failed: %s", exc)
        self.outbox.append(response(init=spb.InitResponse(error=to_spark_error(exc))))
        self.phase = Phase.FAILED

    def _fail(self, exc: ExecutionError) -> None:
        """Send the stream's one ErrorResponse; only Cancel is answered after it."""
        self._send_error(exc)
        self._close_execution()
        self.phase = Phase.FAILED

    def _send_error(self, exc: ExecutionError) -> None:
        """Queue ErrorResponse, logging what it says."""
        self.log.warning("%s", exc)
        self.outbox.append(response(error=spb.ErrorResponse(error=to_spark_error(exc))))

    def _end(self, terminator: spb.UdfResponse) -> None:
        """Queue the terminator; the stream is over."""
        self._close_execution()
        self.outbox.append(terminator)
        self.phase = Phase.ENDED

    def _close_execution(self) -> None:
        """Stop the UDF (its cleanup code runs now); the figures stay readable."""
        if self.execution is not None:
            self.execution.close()

    def _metrics_text(self) -> dict[str, str]:
        """Return the metrics as Spark's map of decimal strings."""
        figures = self.metrics()
        figures["peak_rss_bytes"] = peak_rss_bytes()
        execution = self.execution
        if execution is not None:
            # The UDFs' own counters (and their call policies'), one `counter.NAME` key each.
            for name, value in execution.metrics_proto().counters.items():
                figures[f"counter.{name}"] = value
        return {key: str(value) for key, value in figures.items()}

    def _execution(self) -> Execution:
        """Return the loaded execution (the phase says there is one)."""
        assert self.execution is not None
        return self.execution

    def _drain(self) -> Iterator[spb.UdfResponse | OutgoingData]:
        """Yield the queued answers."""
        items, self.outbox = self.outbox, []
        yield from items


def to_spark_error(exc: ExecutionError) -> spb.ExecutionError:
    """Turn quiver's error (its traceback already trimmed of quiver's frames) into Spark's."""
    error = exc.to_proto()
    kind = error.WhichOneof("kind")
    if kind == "user_error":
        user = error.user_error
        return spb.ExecutionError(
            user=spb.UserError(
                message=user.message or user.error_class,  # required: `raise E()` has none
                traceback=user.traceback,
                error_class=user.error_class,
            )
        )
    if kind == "worker_error":
        return spb.ExecutionError(worker=spb.WorkerError(message=error.worker_error.message))
    return spb.ExecutionError(protocol=spb.ProtocolError(message=error.protocol_error.message))
