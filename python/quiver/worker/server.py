"""The ``uds`` transport's adapter: turn frames into events of the worker's state machine."""

from __future__ import annotations

import logging

from google.protobuf.message import DecodeError

from quiver._proto import pb
from quiver.protocol.framing import Frame
from quiver.worker.connection import Connection
from quiver.worker.state_machine import State, WorkerStateMachine


class WorkerServer:
    """Serve executions on one connection until the engine closes it or says Shutdown."""

    def __init__(self, conn: Connection, log: logging.Logger) -> None:
        """Start idle on a connection whose Hello has been sent."""
        self.conn = conn
        self.log = log
        self.machine = WorkerStateMachine(conn, log, cancel_ahead=self._cancel_ahead)

    def serve(self) -> None:
        """Handle frames until EOF at a frame boundary or Shutdown."""
        while True:
            frame = self.conn.receive()
            if frame is None:
                self.log.info("the engine closed the connection; exiting")
                self.machine.close()
                return
            if not self.handle(frame):
                return

    def handle(self, frame: Frame) -> bool:
        """Handle one frame; return False when the worker must exit."""
        if not frame.is_control:
            self.machine.on_batch(frame.sequence, frame.body)
            return True
        message = pb.EngineMessage()
        try:
            message.ParseFromString(frame.metadata)
        except DecodeError as exc:
            self.machine.reject(f"a control frame does not hold an EngineMessage: {exc}")
            return True
        kind = message.WhichOneof("kind")
        if kind == "data":
            self.machine.reject(
                "EngineMessage.data must not be sent over uds; batches travel as data frames"
            )
            return True
        if kind == "shutdown":
            return self.on_shutdown(message.shutdown)
        self.machine.handle(message)
        return True

    def on_shutdown(self, shutdown: pb.Shutdown) -> bool:
        """Echo Shutdown and stop serving (only when idle, unless cancel_running is set)."""
        if self.machine.state is not State.IDLE and not shutdown.cancel_running:
            self.machine.reject("Shutdown during an execution (set cancel_running to stop it)")
            return True
        self.machine.close()
        self.conn.send_message(
            pb.WorkerMessage(shutdown=pb.Shutdown(cancel_running=shutdown.cancel_running))
        )
        self.log.info("Shutdown: exiting")
        return False

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
