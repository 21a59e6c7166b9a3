"""The worker's end of a ``uds`` connection: connect, say Hello, send and receive frames."""

from __future__ import annotations

import select
import socket
from collections import deque
from collections.abc import Sequence

import pyarrow as pa

from quiver._proto import pb
from quiver.protocol.framing import (
    DEFAULT_LIMITS,
    Frame,
    FrameLimits,
    encode_control_frame,
    encode_data_frame,
    read_frame,
    send_frame,
)
from quiver.worker.state_machine import worker_hello

UNIX_SCHEME = "unix:"
# Frames read ahead while looking for a Cancel; the engine's in-flight window bounds them anyway.
_MAX_READ_AHEAD = 256


class EndpointError(ValueError):
    """The --connection endpoint is not one this worker can connect to."""


def unix_socket_path(endpoint: str) -> str:
    """Return the socket path of a ``unix:/path`` endpoint."""
    if not endpoint.startswith(UNIX_SCHEME):
        raise EndpointError(
            f"unsupported endpoint {endpoint!r}: this worker speaks the uds transport, "
            "whose endpoints look like unix:/path/to/socket"
        )
    path = endpoint[len(UNIX_SCHEME) :]
    if path.startswith("//"):
        path = path[2:]  # also accept the unix:///path spelling
    if not path:
        raise EndpointError(f"endpoint {endpoint!r} names no socket path")
    return path


class Connection:
    """A connected uds socket that speaks quiver frames."""

    def __init__(self, sock: socket.socket, limits: FrameLimits = DEFAULT_LIMITS) -> None:
        """Wrap a connected, blocking stream socket."""
        self.sock = sock
        self.limits = limits
        self._ahead: deque[Frame] = deque()
        self._eof_ahead = False

    @classmethod
    def connect(cls, endpoint: str) -> Connection:
        """Connect to the engine's listening socket."""
        path = unix_socket_path(endpoint)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        return cls(sock)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    # ---- sending ----

    def send_hello(self, worker_id: str, secret: bytes) -> None:
        """Send the Hello that must be the first frame on the connection."""
        self.send_message(pb.WorkerMessage(hello=worker_hello(worker_id, secret)))

    def send_message(self, message: pb.WorkerMessage) -> None:
        """Send one WorkerMessage as a control frame."""
        send_frame(self.sock, encode_control_frame(message.SerializeToString()))

    def send_data(self, sequence: int, body: Sequence[bytes | pa.Buffer]) -> None:
        """Send one data frame; the body goes out straight from the Arrow buffers."""
        send_frame(self.sock, encode_data_frame(sequence, body))

    # ---- receiving ----

    def receive(self) -> Frame | None:
        """Return the next frame, or None when the engine closed the connection."""
        if self._ahead:
            return self._ahead.popleft()
        if self._eof_ahead:
            return None
        return read_frame(self.sock, self.limits)

    def frames_ahead(self) -> list[Frame]:
        """Read every frame that has already arrived, without waiting; return all unread ones.

        The worker looks ahead for a Cancel so that it can drop the batches queued before it.
        """
        while not self._eof_ahead and len(self._ahead) < _MAX_READ_AHEAD and self._readable():
            frame = read_frame(self.sock, self.limits)
            if frame is None:
                self._eof_ahead = True
            else:
                self._ahead.append(frame)
        return list(self._ahead)

    def _readable(self) -> bool:
        """Tell whether bytes (or EOF) are waiting on the socket."""
        ready, _, _ = select.select([self.sock], [], [], 0)
        return bool(ready)
