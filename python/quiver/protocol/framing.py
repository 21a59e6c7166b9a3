"""Encode and decode frames of the quiver ``uds`` transport (docs/protocol.md, section 4).

A frame is a 32-byte little-endian header, ``metadata_length`` bytes of metadata (a serialized
protobuf envelope, control frames only) and ``body_length`` bytes of body (one Arrow IPC
stream, data frames only).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

MAGIC = b"QVR1"
HEADER = struct.Struct("<4sBBHQIIQ")
HEADER_SIZE = HEADER.size  # 32
MAX_U32 = 0xFFFF_FFFF
MAX_U64 = 0xFFFF_FFFF_FFFF_FFFF

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
    """Return the buffers of a control frame (header, metadata), to be written together."""
    length = memoryview(metadata).nbytes
    return [pack_header(FrameKind.CONTROL, 0, length, 0), metadata]


def encode_data_frame(sequence: int, body: BytesLike | Sequence[BytesLike]) -> list[BytesLike]:
    """Return the buffers of a data frame (header, then the body buffers, not joined)."""
    parts = [body] if _is_bytes_like(body) else list(body)  # type: ignore[list-item]
    length = sum(memoryview(part).nbytes for part in parts)
    return [pack_header(FrameKind.DATA, sequence, 0, length), *parts]


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
    """Cut a byte stream into whole frames, without doing any I/O itself.

    The decoder owns the memory the next bytes belong in: :meth:`next_buffer` returns it (the
    rest of the header, of the metadata, or of the body) and :meth:`advance` says how many bytes
    were written there. A socket reader ``recv_into``-s straight into it, so a body lands in its
    one 64-byte-aligned Arrow buffer with no copy; :meth:`feed` copies bytes that arrived
    elsewhere. A header is checked (and its lengths bounded by the limits) before anything is
    allocated for the frame.
    """

    def __init__(self, limits: FrameLimits = DEFAULT_LIMITS) -> None:
        """Create a decoder that rejects frames over ``limits``."""
        self.limits = limits
        self._header_bytes = bytearray(HEADER_SIZE)
        self._start_frame()

    def _start_frame(self) -> None:
        """Wait for the header of the next frame."""
        self._header: FrameHeader | None = None
        self._metadata = bytearray()
        self._body: pa.Buffer | None = None
        self._target = memoryview(self._header_bytes)
        self._filled = 0  # bytes written into self._target
        self._frame_filled = 0  # bytes of the current frame received so far

    @property
    def pending_bytes(self) -> int:
        """Return how many bytes of an incomplete frame have been received."""
        return self._frame_filled

    def next_buffer(self) -> memoryview:
        """Return the (never empty) memory the next bytes of the stream go into."""
        return self._target[self._filled :]

    def advance(self, count: int) -> Frame | None:
        """Record that ``count`` bytes were written into :meth:`next_buffer`.

        Returns the frame they complete, if any; raises FramingError on a bad header.
        """
        if not 0 <= count <= self._target.nbytes - self._filled:
            raise ValueError(
                f"advance({count}) past the {self._target.nbytes - self._filled} bytes asked for"
            )
        self._filled += count
        self._frame_filled += count
        if self._filled < self._target.nbytes:
            return None
        if self._header is None:
            self._header = parse_header(self._header_bytes, self.limits)
            self._metadata = bytearray(self._header.metadata_length)
            return self._next_part(memoryview(self._metadata))
        if self._body is None:
            body = allocate_body(self._header.body_length)
            self._body = body
            return self._next_part(memoryview(body).cast("B"))
        return self._finish_frame()

    def _next_part(self, target: memoryview) -> Frame | None:
        """Start filling ``target``, or move on at once when it is empty."""
        self._target = target
        self._filled = 0
        return self.advance(0) if target.nbytes == 0 else None

    def _finish_frame(self) -> Frame:
        """Hand out the completed frame and wait for the next one."""
        header, body = self._header, self._body
        assert header is not None and body is not None
        frame = Frame(header.kind, header.sequence, bytes(self._metadata), body)
        self._start_frame()
        return frame

    def feed(self, chunk: BytesLike) -> list[Frame]:
        """Copy ``chunk`` in; return the frames it completes (possibly none)."""
        view = memoryview(chunk).cast("B")
        frames = []
        while view.nbytes:
            target = self.next_buffer()
            count = min(target.nbytes, view.nbytes)
            target[:count] = view[:count]
            view = view[count:]
            frame = self.advance(count)
            if frame is not None:
                frames.append(frame)
        return frames

    def close(self) -> None:
        """Declare the end of the stream; raise TruncatedFrameError inside a frame."""
        if self._frame_filled == 0:
            return
        part = "header" if self._header is None else "metadata" if self._body is None else "body"
        whole = HEADER_SIZE
        if self._header is not None:
            whole += self._header.metadata_length + self._header.body_length
        raise TruncatedFrameError(
            f"connection closed in the middle of a frame {part}: expected "
            f"{self._target.nbytes} bytes, got {self._filled} (the frame: expected {whole} "
            f"bytes, got {self._frame_filled})"
        )
