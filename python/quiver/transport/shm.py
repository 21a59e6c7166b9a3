"""The ``shm`` transport: the uds framing on the engine's socket, batches in shared memory.

The worker side of docs/protocol.md, section 10. The worker connects to ``shm:PATH`` and says Hello
as over uds; the engine answers with ``ShmSetup`` and one memfd (SCM_RIGHTS): the input arena,
which the worker maps read-only (the engine sealed it against writable mappings). ``ShmData``
frames from the engine name regions of it: an input batch is read in place (a ``pa.py_buffer``
over the mapping, valid until the worker answers that batch). A result is written (``writev``,
never mapped) into a memfd of its own, which goes with the first byte of its ``ShmData`` frame and
which the engine seals against writing before it reads a byte: nothing the worker or its UDF does
afterwards can change what the engine validated. Small results go inline, as over uds.
"""

from __future__ import annotations

import array
import logging
import mmap
import os
import socket
from collections.abc import Sequence

import pyarrow as pa

from quiver._proto import pb
from quiver.protocol.framing import (
    DEFAULT_LIMITS,
    BytesLike,
    Frame,
    FrameDecoder,
    FrameLimits,
    encode_control_frame,
)
from quiver.protocol.items import EngineItem, IncomingBatch, UndecodableMessage
from quiver.transport.base import (
    EXIT_CONNECTION_LOST,
    EXIT_USAGE,
    ChannelClosed,
    EndpointError,
    SessionFactory,
    WorkerConfig,
)
from quiver.transport.socket_inbox import FrameToItem
from quiver.transport.uds import (
    UdsConnection,
    frame_item,
    send_frame,
    serve_connected,
)

SHM_SCHEME = "shm:"
# Results smaller than this go inline: for them a memfd's system calls cost more than the socket.
INLINE_BELOW = 64 * 1024
_INT_SIZE = array.array("i").itemsize
_IOV_MAX = 1024


def shm_socket_path(endpoint: str) -> str:
    """Return the socket path of a ``shm:/path`` endpoint."""
    if not endpoint.startswith(SHM_SCHEME) or not endpoint[len(SHM_SCHEME) :]:
        raise EndpointError(
            f"unsupported endpoint {endpoint!r}: the shm transport's endpoints look like "
            "shm:/path/to/socket"
        )
    return endpoint[len(SHM_SCHEME) :]


class SetupError(Exception):
    """The engine's ShmSetup did not come, or its arenas cannot be mapped."""


class ShmConnection(UdsConnection):
    """The worker's end: uds frames on the socket, input batches in the mapped arena, each result
    in a memfd of its own."""

    def __init__(self, sock: socket.socket, log: logging.Logger) -> None:
        """Wrap a connected socket; the arena comes with :meth:`take_arenas`."""
        super().__init__(sock)
        self.log = log
        self.input: memoryview | None = None
        self._maps: list[mmap.mmap] = []

    @classmethod
    def connect(cls, endpoint: str, log: logging.Logger) -> ShmConnection:  # type: ignore[override]
        """Connect to the engine's listening socket."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(shm_socket_path(endpoint))
        except OSError:
            sock.close()
            raise
        return cls(sock, log)

    def open_arenas(self) -> None:
        """Take the arenas (:meth:`take_arenas`); any failure to is a SetupError, so that only
        the set-up's failures, not the conversation's, are reported as shared memory's."""
        try:
            self.take_arenas()
        except SetupError:
            raise
        except (OSError, ValueError) as exc:
            raise SetupError(f"{type(exc).__name__}: {exc}") from exc

    def take_arenas(self, limits: FrameLimits = DEFAULT_LIMITS) -> None:
        """Read ShmSetup and its memfd, map the input arena, and answer ShmReady."""
        frame, fds = _receive_with_descriptors(self.sock, FrameDecoder(limits))
        try:
            if frame is None or not frame.is_control:
                raise SetupError("the engine sent no ShmSetup after Hello")
            message = pb.EngineMessage()
            message.ParseFromString(frame.metadata)
            if message.WhichOneof("kind") != "shm_setup" or len(fds) != 1:
                raise SetupError(
                    f"expected ShmSetup with 1 descriptor after Hello, got "
                    f"{message.WhichOneof('kind')} with {len(fds)}"
                )
            self.input = self._map(fds[0], message.shm_setup.input_bytes)
        finally:
            for fd in fds:
                os.close(fd)
        self.send_message(pb.WorkerMessage(shm_ready=pb.ShmReady()))

    def _map(self, fd: int, size: int) -> memoryview:
        """Map ``size`` bytes of the arena read-only, checking that the memfd really has them."""
        actual = os.fstat(fd).st_size
        if size <= 0 or actual < size:
            raise SetupError(f"an arena of {size} bytes is announced, but its memfd has {actual}")
        mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        self._maps.append(mapping)
        return memoryview(mapping)

    def incoming(self, data: pb.ShmData) -> EngineItem:
        """Turn ShmData into a batch read in place, once its region is checked against the arena."""
        offset, length = data.region.offset, data.region.length
        size = self.input.nbytes if self.input is not None else 0
        if length == 0 or offset > size or length > size - offset:
            return UndecodableMessage(
                f"ShmData for batch {data.sequence} names {length} bytes at offset {offset}, "
                f"outside the input arena of {size} bytes"
            )
        assert self.input is not None
        return IncomingBatch(data.sequence, self.input[offset : offset + length])

    def send_data(self, sequence: int, body: Sequence[bytes | pa.Buffer]) -> None:
        """Write the result into a memfd of its own and hand it over with its ShmData frame;
        small results go inline."""
        views = [view for view in (memoryview(part).cast("B") for part in body) if view.nbytes]
        length = sum(view.nbytes for view in views)
        if length < INLINE_BELOW:
            super().send_data(sequence, body)
            return
        fd = os.memfd_create("quiver-result", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            _write_all(fd, views)
            region = pb.ShmRegion(offset=0, length=length)
            message = pb.WorkerMessage(shm_data=pb.ShmData(sequence=sequence, region=region))
            self._send_with_descriptor(encode_control_frame(message.SerializeToString()), fd)
        finally:
            os.close(fd)  # the engine has its own descriptor now

    def _send_with_descriptor(self, frame: list[BytesLike], fd: int) -> None:
        """Send a small frame with ``fd`` attached to its first byte."""
        data = b"".join(bytes(part) for part in frame)
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
        try:
            sent = self.sock.sendmsg([data], rights)
            if sent < len(data):
                send_frame(self.sock, [data[sent:]])
        except OSError as exc:
            raise ChannelClosed(f"cannot write to the engine's socket: {exc}") from exc

    def close(self) -> None:
        """Close the socket; the mappings go with the process."""
        super().close()


def _write_all(fd: int, views: list[memoryview]) -> None:
    """Write every byte of ``views`` to ``fd`` (writev, resuming after partial writes)."""
    pending = list(views)
    while pending:
        written = os.writev(fd, pending[:_IOV_MAX])
        while written:
            head = pending[0]
            if written >= head.nbytes:
                written -= head.nbytes
                pending.pop(0)
            else:
                pending[0] = head[written:]
                written = 0


def _receive_with_descriptors(
    sock: socket.socket, decoder: FrameDecoder
) -> tuple[Frame | None, list[int]]:
    """Read one frame with recvmsg, keeping the descriptors that come with its bytes."""
    fds: list[int] = []
    space = socket.CMSG_SPACE(4 * _INT_SIZE)
    while True:
        count, ancillary, _flags, _ = sock.recvmsg_into([decoder.next_buffer()], space)
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(data[: len(data) - len(data) % _INT_SIZE])
                fds.extend(received)
        if count == 0:
            decoder.close()
            return None, fds
        frame = decoder.advance(count)
        if frame is not None:
            return frame, fds


def shm_item(conn: ShmConnection) -> FrameToItem:
    """Turn the engine's frames into items: ShmData becomes a batch read in place; ShmRelease,
    which engines no longer send, is ignored (None: no item)."""

    def to_item(frame: Frame) -> EngineItem | None:
        item = frame_item(frame)
        if isinstance(item, pb.EngineMessage):
            kind = item.WhichOneof("kind")
            if kind == "shm_release":
                return None
            if kind == "shm_data":
                return conn.incoming(item.shm_data)
            if kind == "shm_setup":
                return UndecodableMessage("ShmSetup after the shared memory was set up")
        return item

    return to_item


class ShmTransport:
    """Connect to ``shm:PATH``, send Hello, take the arenas, serve executions until EOF."""

    name = "shm"
    schemes = (SHM_SCHEME,)

    def serve(self, config: WorkerConfig, new_session: SessionFactory) -> int:
        """Serve the one connection; return the exit status."""
        log = config.log
        try:
            conn = ShmConnection.connect(config.endpoint, log)
        except EndpointError as exc:
            log.error("%s", exc)
            return EXIT_USAGE
        except OSError as exc:
            log.error("cannot connect to %s: %s", config.endpoint, exc)
            return EXIT_CONNECTION_LOST
        try:
            return serve_connected(conn, config, new_session, shm_item(conn), conn.open_arenas)
        except SetupError as exc:
            log.error("cannot set up shared memory with the engine: %s", exc)
            return EXIT_CONNECTION_LOST
