"""The worker's state machine (docs/protocol.md, section 2): idle, running, failed.

It knows nothing of sockets or calls: it is the :class:`~quiver.transport.base.Conversation` a
transport (:mod:`quiver.transport`) feeds the engine's items to, and it answers through the
transport's :class:`~quiver.transport.base.MessageSink`. Whatever the items hold, it answers
with a message (an Error when they are malformed) and never lets an exception out, except
:class:`~quiver.transport.base.ChannelClosed` when the engine can no longer be answered.
"""

from __future__ import annotations

import enum
import logging
import os
import platform
from collections.abc import Callable
from typing import BinaryIO

import pyarrow as pa

from quiver._proto import pb
from quiver.protocol import PROTOCOL_VERSION
from quiver.protocol.items import EngineItem, IncomingBatch, UndecodableMessage
from quiver.transport.base import ChannelClosed, Lookahead, MessageSink
from quiver.worker.call_policy import BatchCancelled, cancel_probe
from quiver.worker.errors import ExecutionError, ProtocolViolation, UserError, WorkerFailure
from quiver.worker.execution import Execution
from quiver.worker.native_batches import NativeBatches

# What a batch arrives as: one Arrow buffer (uds) or a stream over the received bytes (grpc).
BatchBody = pa.Buffer | BinaryIO


class State(enum.Enum):
    """Where the worker is in the life of an execution."""

    IDLE = "idle"
    RUNNING = "running"
    FAILED = "failed"


def worker_hello(worker_id: str, secret: bytes = b"") -> pb.Hello:
    """Describe this worker: protocol version, id, runtime, pid (and the secret, when given)."""
    return pb.Hello(
        protocol_version=PROTOCOL_VERSION,
        worker_id=worker_id,
        secret=secret,
        runtime=f"python {platform.python_version()} pyarrow {pa.__version__}",
        pid=os.getpid(),
    )


# Batches one worker runs at once while an async row UDF waits on their calls; past it the
# next batches wait in the transport (the engine's window is usually smaller).
MOST_BATCHES_AT_ONCE = 16


class NoLookahead:
    """For transports that cannot look ahead: no Cancel waits, no batch is ready."""

    def cancel_ahead(self) -> bool:
        """Report that no Cancel is waiting."""
        return False

    def take_ready(self) -> EngineItem | None:
        """Report that no item is ready."""
        return None


class WorkerStateMachine:
    """Drive executions one after another from the engine's messages."""

    def __init__(
        self,
        sink: MessageSink,
        log: logging.Logger,
        lookahead: Lookahead | None = None,
    ) -> None:
        """Start idle; ``lookahead`` tells whether a Cancel already waits behind this batch, and
        hands over the batches that arrived behind it (several run at once for async UDFs)."""
        self.sink = sink
        self.log = log
        self.lookahead = lookahead or NoLookahead()
        self.cancel_ahead = self.lookahead.cancel_ahead
        self.state = State.IDLE
        self.execution: Execution | None = None
        # FinishResponse / CancelResponse sent so far: a grpc call ends after its first one.
        self.executions_ended = 0
        # The per-batch path in native code, over a socket (worker/native_batches.py).
        self.native = NativeBatches.attach(self)

    # ---- the Conversation interface ----

    @property
    def idle(self) -> bool:
        """Tell whether no execution is under way."""
        return self.state is State.IDLE

    @property
    def running(self) -> bool:
        """Tell whether an execution is under way and has not failed."""
        return self.state is State.RUNNING

    def handle(self, item: EngineItem) -> None:
        """Act on one item from the engine; a transport deals with Shutdown before it gets here.

        A failure of the worker's own code while handling it fails the execution with a
        WorkerFailure rather than ending the process: the engine gets an answer either way.
        """
        try:
            self._dispatch(item)
        except ChannelClosed:
            raise
        except Exception as exc:
            self.log.exception("unexpected failure handling %s", _describe(item))
            self._fail_unexpected(exc, item)

    def serve_natively(self) -> None:
        """Let the native batch loop answer the batches that come next, when it can; it
        returns what else arrives to the transport's reader."""
        if self.native is not None:
            self.native.serve()

    def cancel(self, reason: str) -> None:
        """Cancel the running execution from the worker's side (Shutdown, SIGTERM)."""
        self.on_cancel(pb.Cancel(reason=reason))

    def _fail_unexpected(self, exc: Exception, item: EngineItem) -> None:
        """Report an exception the worker did not expect as a WorkerError."""
        error = WorkerFailure(
            f"the worker failed handling {_describe(item)}: {type(exc).__name__}: {exc}"
        )
        sequence = item.sequence if isinstance(item, IncomingBatch) else None
        if self.state is State.IDLE:
            self._send_error(error.to_proto(), sequence)
        elif self.state is State.RUNNING:
            self.fail(error, sequence)
        # FAILED: the execution's one Error has been sent; the log has this one.

    def _dispatch(self, item: EngineItem) -> None:
        """Hand one item to the handler of its kind."""
        if isinstance(item, IncomingBatch):
            self.on_batch(*_batch_of(item))
            return
        if isinstance(item, UndecodableMessage):
            self.reject(item.reason)
            return
        message = item
        kind = message.WhichOneof("kind")
        if kind is None:
            self.reject("an EngineMessage holds no message (unknown or empty 'kind')")
            return
        if kind == "data":
            self.on_batch(*_batch_of(message))
            return
        if kind == "shutdown":
            self.reject("Shutdown is not accepted here")
            return
        handler: Callable[[object], None] = {  # type: ignore[assignment]
            "init": self.on_init,
            "payload_chunk": self.on_payload_chunk,
            "finish": self.on_finish,
            "cancel": self.on_cancel,
            "heartbeat": self.on_heartbeat,
        }[kind]
        handler(getattr(message, kind))

    # ---- messages ----
    # ---- messages ----

    def on_init(self, init: pb.Init) -> None:
        """Start an execution; load the UDFs now, or once their payload chunks arrived."""
        if self.state is not State.IDLE:
            self.reject("Init during an execution (a worker serves one execution at a time)")
            return
        self.execution = Execution(init, self.log)
        self.state = State.RUNNING
        self.log.debug(
            "Init: %d UDF(s) %s, %d payload chunk(s)",
            len(init.udfs),
            [udf.name for udf in init.udfs],
            init.payload_chunk_count,
        )
        if init.payload_chunk_count == 0:
            self._load()

    def on_payload_chunk(self, chunk: pb.PayloadChunk) -> None:
        """Append payload bytes; load the UDFs after the last chunk."""
        if self.state is State.FAILED:
            return
        if self.state is State.IDLE:
            self.reject("PayloadChunk outside an execution")
            return
        execution = self._running()
        if execution.loaded:
            self.reject("PayloadChunk after the UDFs were loaded (more than Init announced)")
            return
        try:
            execution.add_payload_chunk(chunk)
        except ExecutionError as exc:
            self.fail(exc)
            return
        if execution.chunks_left == 0:
            self._load()

    def on_batch(self, sequence: int, body: BatchBody) -> None:
        """Answer one batch with one result batch of the same sequence."""
        if self.state is State.FAILED:
            return  # after an Error, batches are ignored until Finish or Cancel
        if self.state is State.IDLE:
            self.reject(f"Data (sequence {sequence}) outside an execution", sequence)
            return
        execution = self._running()
        if not execution.loaded:
            self.reject(
                f"Data (sequence {sequence}) before all {execution.init.payload_chunk_count} "
                "PayloadChunk messages arrived",
                sequence,
            )
            return
        if self.cancel_ahead():
            self.log.debug("dropping batch %d: a Cancel follows it", sequence)
            return
        if execution.overlaps:
            self._run_overlapped(execution, sequence, body)
            return
        try:
            # Async UDFs look for a Cancel while their calls wait (worker/call_policy.py).
            with cancel_probe(self.cancel_ahead):
                result = execution.run_batch(body)
        except BatchCancelled:
            self.log.debug("dropping batch %d: a Cancel came while its calls waited", sequence)
            return
        except ExecutionError as exc:
            self.fail(exc, sequence)
            return
        self.sink.send_data(sequence, result)

    def run_decoded(self, sequence: int, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        """Run the UDFs over a batch the native batch loop decoded; return the result, or
        None when the execution failed on it (its Error is sent, as :meth:`on_batch` does)."""
        try:
            return self._running().run_udfs(batch)
        except ExecutionError as exc:
            self.fail(exc, sequence)
        except ChannelClosed:
            raise
        except Exception as exc:
            item = IncomingBatch(sequence, b"")
            self.log.exception("unexpected failure handling %s", _describe(item))
            self._fail_unexpected(exc, item)
        return None

    def send_result(self, sequence: int, batch: pa.RecordBatch, result: pa.RecordBatch) -> None:
        """Encode and send the result of a batch the native batch loop decoded (a result
        larger than the loop sends itself), or fail the execution when it cannot go."""
        try:
            encoded = self._running().encode(batch, result)
        except ExecutionError as exc:
            self.fail(exc, sequence)
            return
        self.sink.send_data(sequence, encoded)

    def _run_overlapped(self, execution: Execution, sequence: int, body: BatchBody) -> None:
        """Run this batch and the ones already behind it at once, answering them in order.

        An async row UDF's lanes go on with the next batch's rows while the last calls of one
        wait (docs/protocol.md, "What a worker does while a batch waits"); heartbeats that
        arrive meanwhile are echoed at once.
        """
        from quiver.worker import async_calls  # asyncio is slow to import: only when used

        def take_next() -> tuple[int, BatchBody] | None:
            while (item := self.lookahead.take_ready()) is not None:
                if isinstance(item, pb.EngineMessage) and item.WhichOneof("kind") == "heartbeat":
                    self.on_heartbeat(item.heartbeat)
                    continue
                return _batch_of(item)
            return None

        try:
            async_calls.run_overlapped(
                (sequence, body),
                execution.run_batch_async,
                take_next,
                self.sink.send_data,
                self.cancel_ahead,
                MOST_BATCHES_AT_ONCE,
                execution.stop_calls,
            )
        except BatchCancelled:
            self.log.debug("dropping the batches in flight: a Cancel came while they waited")
        except async_calls.BatchFailed as failed:
            if not isinstance(failed.cause, ExecutionError):
                raise failed.cause from None  # handle() reports it as the worker's failure
            self.fail(failed.cause, failed.sequence)

    def on_finish(self, finish: pb.Finish) -> None:
        """End the execution after the last batch: run iterator UDFs to their end, report."""
        if self.state is State.IDLE:
            self.reject("Finish outside an execution")
            return
        execution = self._running()
        if self.state is State.RUNNING and not execution.loaded:
            self.reject("Finish before all PayloadChunk messages arrived")
        elif self.state is State.RUNNING:
            try:
                execution.finish()
            except ExecutionError as exc:
                self.fail(exc)
        metrics = execution.metrics_proto()
        self._end_execution(pb.WorkerMessage(finish_response=pb.FinishResponse(metrics=metrics)))

    def on_cancel(self, cancel: pb.Cancel) -> None:
        """Stop the execution, dropping what is left of it."""
        if self.state is State.IDLE:
            self.reject("Cancel outside an execution")
            return
        execution = self._running()
        self.log.debug("Cancel: %s", cancel.reason or "(no reason given)")
        metrics = execution.metrics_proto()
        self._end_execution(pb.WorkerMessage(cancel_response=pb.CancelResponse(metrics=metrics)))

    def on_heartbeat(self, heartbeat: pb.Heartbeat) -> None:
        """Echo the heartbeat's nonce."""
        self.sink.send_message(pb.WorkerMessage(heartbeat=pb.Heartbeat(nonce=heartbeat.nonce)))

    # ---- errors and transitions ----

    def _load(self) -> None:
        """Load the execution's UDFs and answer InitResponse (or the Error that stops it)."""
        execution = self._running()
        try:
            result_schema = execution.load()
        except ExecutionError as exc:
            self.fail(exc)
            return
        response = pb.InitResponse(result_schema=result_schema)
        self.sink.send_message(pb.WorkerMessage(init_response=response))

    def reject(self, message: str, sequence: int | None = None) -> None:
        """Answer a message that is not allowed in the current state with a ProtocolError."""
        if self.state is State.FAILED:
            # At most one Error per execution: after it, stray messages are only logged.
            self.log.warning("ignoring (execution already failed): %s", message)
            return
        if self.state is State.IDLE:
            # Outside an execution there is nothing to fail: report and stay idle.
            self.log.warning("protocol error: %s", message)
            self._send_error(ProtocolViolation(message).to_proto(), sequence)
            return
        self.fail(ProtocolViolation(message), sequence)

    def fail(self, exc: ExecutionError, sequence: int | None = None) -> None:
        """Send the execution's one Error and wait for Finish or Cancel."""
        error = exc.to_proto()
        where = f" (batch {sequence})" if sequence is not None else ""
        if isinstance(exc, UserError):
            self.log.warning("%s%s\n%s", exc, where, error.user_error.traceback.rstrip())
        else:
            self.log.warning("%s%s", exc, where)
        self._send_error(error, sequence)
        self.close()
        self.state = State.FAILED

    def _send_error(self, error: pb.Error, sequence: int | None) -> None:
        """Send an Error, naming the batch it is about when there is one."""
        if sequence is not None:
            error.sequence = sequence
            error.has_sequence = True
        self.sink.send_message(pb.WorkerMessage(error=error))

    def _end_execution(self, response: pb.WorkerMessage) -> None:
        """Send FinishResponse / CancelResponse and become idle."""
        self.close()
        self.sink.send_message(response)
        self.execution = None
        self.state = State.IDLE
        self.executions_ended += 1

    def close(self) -> None:
        """Stop the UDFs of the current execution, if any (their cleanup code runs now)."""
        if self.execution is not None:
            self.execution.close()

    def _running(self) -> Execution:
        """Return the current execution (the state says there is one)."""
        assert self.execution is not None
        return self.execution


def _batch_of(item: EngineItem) -> tuple[int, BatchBody]:
    """Return a batch's sequence and Arrow body, from a transport's batch or a Data message."""
    if isinstance(item, IncomingBatch):
        arrow_ipc = item.arrow_ipc
        body = arrow_ipc if isinstance(arrow_ipc, pa.Buffer) else pa.py_buffer(arrow_ipc)
        return item.sequence, body
    assert isinstance(item, pb.EngineMessage)
    return item.data.sequence, pa.py_buffer(item.data.arrow_ipc)


def _describe(item: EngineItem) -> str:
    """Name an item in a log line or an error message."""
    if isinstance(item, IncomingBatch):
        return f"Data (sequence {item.sequence})"
    if isinstance(item, UndecodableMessage):
        return "an undecodable message"
    return f"{item.WhichOneof('kind') or 'an empty'} message"
