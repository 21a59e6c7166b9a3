"""Encode and decode frames of the quiver ``uds`` transport (docs/protocol.md, section 4).

A frame is a 32-byte little-endian header, ``metadata_length`` bytes of metadata (a serialized
protobuf envelope, control frames only) and ``body_length`` bytes of body (one Arrow IPC
stream, data frames only).
"""

from __future__ import annotations

import enum
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa

MAGIC = b"QVR1"
HEADER = struct.Struct("<4sBBHQIIQ")
HEADER_SIZE = HEADER.size  # 32
MAX_U32 = 0xFFFF_FFFF
MAX_U64 = 0xFFFF_FFFF_FFFF_FFFF
# Linux refuses sendmsg with more than IOV_MAX (1024) buffers.
_IOV_MAX = 1024

BytesLike = bytes | bytearray | memoryview | pa.Buffer


class FrameKind(enum.IntEnum):
    """The kind byte of a frame header."""

    CONTROL = 1
    DATA = 2


class FramingError(Exception):
    """A frame violates the uds framing, or the connection ended inside a frame."""


class TruncatedFrameError(FramingError):
    """The connection ended inside a frame."""


@dataclass(frozen=True)
class FrameLimits:
    """The largest metadata and body a receiver accepts."""

    max_metadata_bytes: int = 64 * 1024 * 1024
    max_body_bytes: int = 2 * 1024 * 1024 * 1024


DEFAULT_LIMITS = FrameLimits()


@dataclass(frozen=True)
class FrameHeader:
    """The fields of a validated header."""

    kind: FrameKind
    sequence: int
    metadata_length: int
    body_length: int


@dataclass(frozen=True)
class Frame:
    """A whole frame: control frames carry metadata, data frames a body."""

    kind: FrameKind
    sequence: int
    metadata: bytes
    body: pa.Buffer

    @property
    def is_control(self) -> bool:
        """Tell whether this is a control frame."""
        return self.kind is FrameKind.CONTROL


# ---- encoding ----


def pack_header(kind: FrameKind, sequence: int, metadata_length: int, body_length: int) -> bytes:
    """Return the 32 header bytes of a frame."""
    if not 0 <= sequence <= MAX_U64:
        raise ValueError(f"frame sequence {sequence} does not fit in a u64")
    if not 0 <= metadata_length <= MAX_U32:
        raise ValueError(f"frame metadata of {metadata_length} bytes does not fit in a u32 length")
    if not 0 <= body_length <= MAX_U64:
        raise ValueError(f"frame body of {body_length} bytes does not fit in a u64 length")
    return HEADER.pack(MAGIC, int(kind), 0, 0, sequence, metadata_length, 0, body_length)


def encode_control_frame(metadata: BytesLike) -> list[BytesLike]:
    """Return the buffers of a control frame (header, metadata) for ``socket.sendmsg``."""
    length = memoryview(metadata).nbytes
    return [pack_header(FrameKind.CONTROL, 0, length, 0), metadata]


def encode_data_frame(sequence: int, body: BytesLike | Sequence[BytesLike]) -> list[BytesLike]:
    """Return the buffers of a data frame (header, then the body buffers, not joined)."""
    parts = [body] if _is_bytes_like(body) else list(body)  # type: ignore[list-item]
    length = sum(memoryview(part).nbytes for part in parts)
    return [pack_header(FrameKind.DATA, sequence, 0, length), *parts]


def send_frame(sock: socket.socket, buffers: Iterable[BytesLike]) -> None:
    """Write all ``buffers`` to ``sock`` with sendmsg, resuming after partial writes."""
    pending = [memoryview(b).cast("B") for b in buffers]
    pending = [view for view in pending if view.nbytes]
    while pending:
        sent = sock.sendmsg(pending[:_IOV_MAX])
        while sent:
            head = pending[0]
            if sent >= head.nbytes:
                sent -= head.nbytes
                pending.pop(0)
            else:
                pending[0] = head[sent:]
                sent = 0


def _is_bytes_like(value: object) -> bool:
    """Tell a single buffer apart from a sequence of buffers."""
    return isinstance(value, (bytes, bytearray, memoryview, pa.Buffer))


# ---- decoding ----


def parse_header(raw: BytesLike, limits: FrameLimits = DEFAULT_LIMITS) -> FrameHeader:
    """Validate the 32 header bytes ``raw``; raise FramingError saying what is wrong."""
    magic, kind, flags, reserved16, sequence, metadata_length, reserved32, body_length = (
        HEADER.unpack(raw)
    )
    if magic != MAGIC:
        raise FramingError(
            f"bad frame magic {bytes(magic)!r} (expected {MAGIC!r}): the peer does not speak "
            "the quiver uds framing, or the stream lost its place"
        )
    if kind not in (FrameKind.CONTROL, FrameKind.DATA):
        raise FramingError(f"unknown frame kind {kind} (1 = control, 2 = data)")
    if flags != 0:
        raise FramingError(f"frame flags must be 0, got {flags:#04x}")
    if reserved16 != 0 or reserved32 != 0:
        raise FramingError(
            f"reserved header fields must be 0, got {reserved16:#06x} and {reserved32:#010x}"
        )
    _check_kind_layout(FrameKind(kind), sequence, metadata_length, body_length)
    _check_limits(metadata_length, body_length, limits)
    return FrameHeader(FrameKind(kind), sequence, metadata_length, body_length)


def _check_kind_layout(kind: FrameKind, sequence: int, metadata_length: int, body: int) -> None:
    """Reject a control frame with a body or a sequence, and a data frame with metadata."""
    if kind is FrameKind.CONTROL and body != 0:
        raise FramingError(f"control frame with a body of {body} bytes (must be empty)")
    if kind is FrameKind.CONTROL and sequence != 0:
        raise FramingError(f"control frame with sequence {sequence} (must be 0)")
    if kind is FrameKind.DATA and metadata_length != 0:
        raise FramingError(f"data frame with {metadata_length} bytes of metadata (must be empty)")


def _check_limits(metadata_length: int, body_length: int, limits: FrameLimits) -> None:
    """Reject lengths over the receiver's limits."""
    if metadata_length > limits.max_metadata_bytes:
        raise FramingError(
            f"frame metadata of {metadata_length} bytes is over the limit of "
            f"{limits.max_metadata_bytes} bytes"
        )
    if body_length > limits.max_body_bytes:
        raise FramingError(
            f"frame body of {body_length} bytes is over the limit of {limits.max_body_bytes} bytes"
        )


def allocate_body(length: int) -> pa.Buffer:
    """Return a mutable buffer of ``length`` bytes, 64-byte aligned, for a frame body."""
    # Arrow's memory pool aligns allocations to 64 bytes, so the IPC reader can slice
    # the body without copying it.
    return pa.allocate_buffer(length)


class FrameDecoder:
    """Turn a byte stream that arrives in arbitrary chunks into whole frames."""

    def __init__(self, limits: FrameLimits = DEFAULT_LIMITS) -> None:
        """Create a decoder that rejects frames over ``limits``."""
        self.limits = limits
        self._buffer = bytearray()
        self._header: FrameHeader | None = None

    @property
    def pending_bytes(self) -> int:
        """Return how many bytes of an incomplete frame are buffered."""
        return len(self._buffer)

    def feed(self, chunk: BytesLike) -> list[Frame]:
        """Buffer ``chunk``; return the frames it completes (possibly none)."""
        self._buffer += memoryview(chunk).cast("B")
        frames = []
        while (frame := self._next_frame()) is not None:
            frames.append(frame)
        return frames

    def close(self) -> None:
        """Declare the end of the stream; raise TruncatedFrameError inside a frame."""
        if not self._buffer:
            return
        expected = HEADER_SIZE
        if self._header is not None:
            expected += self._header.metadata_length + self._header.body_length
        raise TruncatedFrameError(
            f"connection closed in the middle of a frame: expected {expected} bytes, "
            f"got {len(self._buffer)}"
        )

    def _next_frame(self) -> Frame | None:
        """Cut one whole frame off the buffer, or return None if it is not complete."""
        if self._header is None:
            if len(self._buffer) < HEADER_SIZE:
                return None
            self._header = parse_header(bytes(self._buffer[:HEADER_SIZE]), self.limits)
        header = self._header
        end = HEADER_SIZE + header.metadata_length + header.body_length
        if len(self._buffer) < end:
            return None
        metadata_end = HEADER_SIZE + header.metadata_length
        metadata = bytes(self._buffer[HEADER_SIZE:metadata_end])
        body = allocate_body(header.body_length)
        memoryview(body).cast("B")[:] = self._buffer[metadata_end:end]
        del self._buffer[:end]
        self._header = None
        return Frame(header.kind, header.sequence, metadata, body)


def read_frame(sock: socket.socket, limits: FrameLimits = DEFAULT_LIMITS) -> Frame | None:
    """Read one frame from a blocking socket; return None on EOF at a frame boundary.

    The body is received straight into one 64-byte-aligned Arrow buffer.
    """
    raw = bytearray(HEADER_SIZE)
    got = _recv_exactly(sock, memoryview(raw))
    if got == 0:
        return None
    if got < HEADER_SIZE:
        raise TruncatedFrameError(
            f"connection closed in the middle of a frame header: expected {HEADER_SIZE} bytes, "
            f"got {got}"
        )
    header = parse_header(raw, limits)
    metadata = bytearray(header.metadata_length)
    _recv_part(sock, memoryview(metadata), "metadata")
    body = allocate_body(header.body_length)
    _recv_part(sock, memoryview(body), "body")
    return Frame(header.kind, header.sequence, bytes(metadata), body)


def _recv_part(sock: socket.socket, target: memoryview, what: str) -> None:
    """Fill ``target`` from ``sock``; raise TruncatedFrameError if the connection ends first."""
    got = _recv_exactly(sock, target)
    if got < target.nbytes:
        raise TruncatedFrameError(
            f"connection closed in the middle of a frame {what}: expected {target.nbytes} "
            f"bytes, got {got}"
        )


def _recv_exactly(sock: socket.socket, target: memoryview) -> int:
    """Receive into ``target`` until it is full or the peer closes; return the bytes received."""
    got = 0
    while got < target.nbytes:
        count = sock.recv_into(target[got:])
        if count == 0:
            break
        got += count
    return got
