"""The ``shm`` transport: the uds framing on the engine's socket, batches in shared memory.

The worker side of docs/protocol.md, section 10. The worker connects to ``shm:PATH`` and says Hello
as over uds; the engine answers with ``ShmSetup`` and two memfds (SCM_RIGHTS): the input arena,
which the worker maps read-only (the engine sealed it against writable mappings), and the output
arena, which it maps read-write. ``ShmData`` frames name regions: an input batch is read in place
(a ``pa.py_buffer`` over the mapping, valid until the worker answers that batch); a result is
copied once into a free region of the output arena, which stays the engine's until a
``ShmRelease`` gives it back. A result that does not fit the free space goes inline, as over uds.
"""

from __future__ import annotations

import array
import bisect
import logging
import mmap
import os
import socket
import threading
from collections.abc import Sequence

import pyarrow as pa

from quiver._proto import pb
from quiver.protocol.framing import DEFAULT_LIMITS, Frame, FrameDecoder, FrameLimits
from quiver.protocol.items import EngineItem, IncomingBatch, UndecodableMessage
from quiver.transport.base import (
    EXIT_CONNECTION_LOST,
    EXIT_USAGE,
    ConversationFactory,
    EndpointError,
    WorkerConfig,
)
from quiver.transport.socket_inbox import FrameToItem
from quiver.transport.uds import (
    UdsConnection,
    frame_item,
    serve_connected,
)

SHM_SCHEME = "shm:"
# Every region starts at a multiple of this (the engine's rule too), so buffers read in place
# are aligned for any Arrow type.
ALIGNMENT = 64
# A result shorter than this goes inline, on the socket: for small batches the socket is the faster
# way (the engine's rule too; measured: docs/decisions.md, "shm by default").
INLINE_BELOW_BYTES = 64 << 10
_INT_SIZE = array.array("i").itemsize


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


class OutputArena:
    """First-fit allocation of the output arena's regions; the engine's releases free them.

    Allocation runs on the main thread, releases on the reader thread: one lock guards both.
    """

    def __init__(self, size: int) -> None:
        """Start with the whole arena free."""
        self._lock = threading.Lock()
        usable = size // ALIGNMENT * ALIGNMENT
        self._free: list[list[int]] = [[0, usable]] if usable else []  # sorted [offset, length]
        self._used: dict[int, int] = {}

    def allocate(self, length: int) -> int | None:
        """Return the offset of a free region of ``length`` bytes, or None when none is free."""
        wanted = -(-max(length, 1) // ALIGNMENT) * ALIGNMENT
        with self._lock:
            for index, (offset, size) in enumerate(self._free):
                if size < wanted:
                    continue
                if size == wanted:
                    del self._free[index]
                else:
                    self._free[index] = [offset + wanted, size - wanted]
                self._used[offset] = wanted
                return offset
        return None

    def release(self, offset: int) -> bool:
        """Free the region at ``offset``; False when there is none (the engine's mistake)."""
        with self._lock:
            size = self._used.pop(offset, None)
            if size is None:
                return False
            index = bisect.bisect_left(self._free, [offset, 0])
            self._free.insert(index, [offset, size])
            # Merge with the next, then with the previous neighbour.
            if index + 1 < len(self._free) and offset + size == self._free[index + 1][0]:
                self._free[index][1] += self._free.pop(index + 1)[1]
            if index > 0 and self._free[index - 1][0] + self._free[index - 1][1] == offset:
                self._free[index - 1][1] += self._free.pop(index)[1]
            return True

    @property
    def used_bytes(self) -> int:
        """Return the bytes the engine holds now."""
        with self._lock:
            return sum(self._used.values())


class ShmConnection(UdsConnection):
    """The worker's end: uds frames on the socket, Arrow bytes in the two mapped arenas."""

    def __init__(self, sock: socket.socket, log: logging.Logger) -> None:
        """Wrap a connected socket; the arenas come with :meth:`take_arenas`."""
        super().__init__(sock)
        self.log = log
        self.input: memoryview | None = None
        self.output: memoryview | None = None
        self.arena: OutputArena | None = None
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
        """Read ShmSetup and its two memfds, map them, and answer ShmReady."""
        frame, fds = _receive_with_descriptors(self.sock, FrameDecoder(limits))
        try:
            if frame is None or not frame.is_control:
                raise SetupError("the engine sent no ShmSetup after Hello")
            message = pb.EngineMessage()
            message.ParseFromString(frame.metadata)
            if message.WhichOneof("kind") != "shm_setup" or len(fds) != 2:
                raise SetupError(
                    f"expected ShmSetup with 2 descriptors after Hello, got "
                    f"{message.WhichOneof('kind')} with {len(fds)}"
                )
            setup = message.shm_setup
            self.input = self._map(fds[0], setup.input_bytes, writable=False)
            self.output = self._map(fds[1], setup.output_bytes, writable=True)
            self.arena = OutputArena(setup.output_bytes)
        finally:
            for fd in fds:
                os.close(fd)
        self.send_message(pb.WorkerMessage(shm_ready=pb.ShmReady()))

    def _map(self, fd: int, size: int, writable: bool) -> memoryview:
        """Map ``size`` bytes of an arena, checking that the memfd really has them."""
        actual = os.fstat(fd).st_size
        if size <= 0 or actual < size:
            raise SetupError(f"an arena of {size} bytes is announced, but its memfd has {actual}")
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=prot)
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

    def release(self, message: pb.ShmRelease) -> None:
        """Give the regions the engine dropped back to the output arena."""
        for region in message.regions:
            if self.arena is None or not self.arena.release(region.offset):
                self.log.warning("ShmRelease of offset %d, which is not in use", region.offset)

    def send_data(self, sequence: int, body: Sequence[bytes | pa.Buffer]) -> None:
        """Copy the result into a free output region and name it; inline when it is small (the
        socket is faster for those) or no region is free."""
        views = [memoryview(part).cast("B") for part in body]
        length = sum(view.nbytes for view in views)
        offset = None
        if self.arena is not None and length >= INLINE_BELOW_BYTES:
            offset = self.arena.allocate(length)
        if offset is None:
            super().send_data(sequence, body)
            return
        assert self.output is not None
        position = offset
        for view in views:
            self.output[position : position + view.nbytes] = view
            position += view.nbytes
        region = pb.ShmRegion(offset=offset, length=length)
        self.send_message(pb.WorkerMessage(shm_data=pb.ShmData(sequence=sequence, region=region)))

    def close(self) -> None:
        """Close the socket; the mappings go with the process."""
        super().close()


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
    """Turn the engine's frames into items: ShmData becomes a batch read in place, ShmRelease is
    applied as soon as it is read (None: no item)."""

    def to_item(frame: Frame) -> EngineItem | None:
        item = frame_item(frame)
        if isinstance(item, pb.EngineMessage):
            kind = item.WhichOneof("kind")
            if kind == "shm_release":
                conn.release(item.shm_release)
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

    def serve(self, config: WorkerConfig, new_conversation: ConversationFactory) -> int:
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
            return serve_connected(conn, config, new_conversation, shm_item(conn), conn.open_arenas)
        except SetupError as exc:
            log.error("cannot set up shared memory with the engine: %s", exc)
            return EXIT_CONNECTION_LOST
