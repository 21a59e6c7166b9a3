"""The worker's state machine (docs/protocol.md, section 2): idle, running, failed."""

from __future__ import annotations

import enum
import logging

from google.protobuf.message import DecodeError

from quiver._proto import pb
from quiver.protocol.framing import Frame
from quiver.worker.connection import Connection
from quiver.worker.errors import ExecutionError, ProtocolError, UserError
from quiver.worker.execution import Execution


class State(enum.Enum):
    """Where the worker is in the life of an execution."""

    IDLE = "idle"
    RUNNING = "running"
    FAILED = "failed"


class WorkerServer:
    """Serve executions on one connection until the engine closes it or says Shutdown."""

    def __init__(self, conn: Connection, log: logging.Logger) -> None:
        """Start idle on a connection whose Hello has been sent."""
        self.conn = conn
        self.log = log
        self.state = State.IDLE
        self.execution: Execution | None = None

    def serve(self) -> None:
        """Handle frames until EOF at a frame boundary or Shutdown."""
        while True:
            frame = self.conn.receive()
            if frame is None:
                self.log.info("the engine closed the connection; exiting")
                self._close_execution()
                return
            if not self.handle(frame):
                return

    def handle(self, frame: Frame) -> bool:
        """Handle one frame; return False when the worker must exit."""
        if not frame.is_control:
            self.on_data(frame)
            return True
        message = pb.EngineMessage()
        try:
            message.ParseFromString(frame.metadata)
        except DecodeError as exc:
            self.reject(f"a control frame does not hold an EngineMessage: {exc}")
            return True
        kind = message.WhichOneof("kind")
        if kind is None:
            self.reject("an EngineMessage holds no message (unknown or empty 'kind')")
            return True
        handler = {
            "init": self.on_init,
            "payload_chunk": self.on_payload_chunk,
            "data": self.on_data_message,
            "finish": self.on_finish,
            "cancel": self.on_cancel,
            "heartbeat": self.on_heartbeat,
            "shutdown": self.on_shutdown,
        }[kind]
        return handler(getattr(message, kind)) is not False

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

    def on_data(self, frame: Frame) -> None:
        """Answer one batch with one result batch of the same sequence."""
        if self.state is State.FAILED:
            return  # after an Error, batches are ignored until Finish or Cancel
        if self.state is State.IDLE:
            self.reject(f"Data (sequence {frame.sequence}) outside an execution", frame.sequence)
            return
        execution = self._running()
        if not execution.loaded:
            self.reject(
                f"Data (sequence {frame.sequence}) before all {execution.init.payload_chunk_count} "
                "PayloadChunk messages arrived",
                frame.sequence,
            )
            return
        if self._cancel_ahead():
            self.log.debug("dropping batch %d: a Cancel follows it", frame.sequence)
            return
        try:
            result = execution.run_batch(frame.body)
        except ExecutionError as exc:
            self.fail(exc, frame.sequence)
            return
        self.conn.send_data(frame.sequence, result)

    def on_data_message(self, data: pb.Data) -> None:
        """Reject a Data envelope: over uds a batch travels as a data frame."""
        self.reject("EngineMessage.data must not be sent over uds; batches travel as data frames")

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
        metrics = execution.metrics.to_proto()
        self._end_execution(pb.WorkerMessage(finish_response=pb.FinishResponse(metrics=metrics)))

    def on_cancel(self, cancel: pb.Cancel) -> None:
        """Stop the execution, dropping what is left of it."""
        if self.state is State.IDLE:
            self.reject("Cancel outside an execution")
            return
        execution = self._running()
        self.log.debug("Cancel: %s", cancel.reason or "(no reason given)")
        metrics = execution.metrics.to_proto()
        self._end_execution(pb.WorkerMessage(cancel_response=pb.CancelResponse(metrics=metrics)))

    def on_heartbeat(self, heartbeat: pb.Heartbeat) -> None:
        """Echo the heartbeat's nonce."""
        self.conn.send_message(pb.WorkerMessage(heartbeat=pb.Heartbeat(nonce=heartbeat.nonce)))

    def on_shutdown(self, shutdown: pb.Shutdown) -> bool:
        """Echo Shutdown and stop serving (only when idle, unless cancel_running is set)."""
        if self.state is not State.IDLE and not shutdown.cancel_running:
            self.reject("Shutdown during an execution (set cancel_running to stop it)")
            return True
        self._close_execution()
        self.conn.send_message(
            pb.WorkerMessage(shutdown=pb.Shutdown(cancel_running=shutdown.cancel_running))
        )
        self.log.info("Shutdown: exiting")
        return False

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
        self.conn.send_message(pb.WorkerMessage(init_response=response))

    def reject(self, message: str, sequence: int | None = None) -> None:
        """Answer a message that is not allowed in the current state with a ProtocolError."""
        if self.state is State.FAILED:
            # At most one Error per execution: after it, stray messages are only logged.
            self.log.warning("ignoring (execution already failed): %s", message)
            return
        if self.state is State.IDLE:
            # Outside an execution there is nothing to fail: report and stay idle.
            self.log.warning("protocol error: %s", message)
            self._send_error(ProtocolError(message).to_proto(), sequence)
            return
        self.fail(ProtocolError(message), sequence)

    def fail(self, exc: ExecutionError, sequence: int | None = None) -> None:
        """Send the execution's one Error and wait for Finish or Cancel."""
        error = exc.to_proto()
        where = f" (batch {sequence})" if sequence is not None else ""
        if isinstance(exc, UserError):
            self.log.warning("%s%s\n%s", exc, where, error.user_error.traceback.rstrip())
        else:
            self.log.warning("%s%s", exc, where)
        self._send_error(error, sequence)
        self._close_execution()
        self.state = State.FAILED

    def _send_error(self, error: pb.Error, sequence: int | None) -> None:
        """Send an Error, naming the batch it is about when there is one."""
        if sequence is not None:
            error.sequence = sequence
            error.has_sequence = True
        self.conn.send_message(pb.WorkerMessage(error=error))

    def _end_execution(self, response: pb.WorkerMessage) -> None:
        """Send FinishResponse / CancelResponse and become idle."""
        self._close_execution()
        self.conn.send_message(response)
        self.execution = None
        self.state = State.IDLE

    def _close_execution(self) -> None:
        """Stop the UDFs of the current execution, if any."""
        if self.execution is not None:
            self.execution.close()

    def _running(self) -> Execution:
        """Return the current execution (the state says there is one)."""
        assert self.execution is not None
        return self.execution

    def _cancel_ahead(self) -> bool:
        """Tell whether a Cancel has already arrived behind the current batch."""
        for frame in self.conn.frames_ahead():
            if frame.is_control and _is_cancel(frame.metadata):
                return True
        return False


def _is_cancel(metadata: bytes) -> bool:
    """Tell whether control metadata holds EngineMessage.cancel."""
    message = pb.EngineMessage()
    try:
        message.ParseFromString(metadata)
    except DecodeError:
        return False
    return message.WhichOneof("kind") == "cancel"
