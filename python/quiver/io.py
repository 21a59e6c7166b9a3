"""A file-like reader over a queue of byte chunks that avoids copies where it can."""

from __future__ import annotations

import io
import threading
from collections import deque

import pyarrow as pa

Chunk = bytes | bytearray | memoryview | pa.Buffer


class ZeroCopyByteStream(io.BufferedIOBase):
    """Read bytes from chunks that a producer hands over one at a time.

    A producer calls :meth:`add_next_chunk` for every chunk it receives (for example every
    message of a gRPC stream), then :meth:`finish` at the end or :meth:`abort` on failure. A
    reader uses the ordinary file interface, so ``pyarrow.ipc.open_stream(stream)`` works.

    ``read(n)`` blocks until ``n`` bytes are buffered or the stream is finished. When the bytes lie
    inside one chunk it returns a ``memoryview`` slice of that chunk (no copy, and Arrow then
    slices its buffers out of the chunk); only a read that spans chunks concatenates them, once.
    A chunk must not be modified after it was added.

    One producer thread and one reader thread may use the stream at the same time.
    """

    def __init__(self, chunks: tuple[Chunk, ...] | list[Chunk] = ()) -> None:
        """Create a stream, optionally seeded with the first chunks."""
        super().__init__()
        self._cond = threading.Condition()
        self._chunks: deque[memoryview] = deque()
        self._offset = 0  # read position inside self._chunks[0]
        self._buffered = 0  # bytes not yet read, over all chunks
        self._consumed = 0  # bytes read so far, for tell()
        self._input_done = False
        self._error: BaseException | None = None
        for chunk in chunks:
            self.add_next_chunk(chunk)

    # ---- producer side ----

    def add_next_chunk(self, chunk: Chunk) -> None:
        """Append a chunk; wake a reader that waits for bytes."""
        view = _as_byte_view(chunk)
        with self._cond:
            if self._input_done or self._error is not None:
                raise ValueError(
                    "cannot add a chunk to a ZeroCopyByteStream after finish()/abort()"
                )
            if view.nbytes == 0:
                return  # empty chunks carry nothing and would only complicate reads
            self._chunks.append(view)
            self._buffered += view.nbytes
            self._cond.notify_all()

    def finish(self) -> None:
        """Mark the end of the input: reads return what is left, then empty views. Idempotent."""
        with self._cond:
            self._input_done = True
            self._cond.notify_all()

    def abort(self, exc: BaseException) -> None:
        """Fail the stream: a blocked read and every later read raise ``exc``."""
        with self._cond:
            self._error = exc
            self._chunks.clear()
            self._buffered = 0
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        """Tell whether finish() was called and every byte has been read."""
        with self._cond:
            return self._input_done and self._buffered == 0

    # ---- reader side ----

    def readable(self) -> bool:
        """Report that the stream can be read (it cannot be written or sought)."""
        return True

    def tell(self) -> int:
        """Return how many bytes have been read so far."""
        with self._cond:
            return self._consumed

    def close(self) -> None:
        """Close the stream, drop buffered chunks and wake a blocked reader."""
        with self._cond:
            self._chunks.clear()
            self._buffered = 0
            # Mark the stream closed before waking the reader, or it could wait again.
            super().close()
            self._cond.notify_all()

    def read(self, size: int | None = -1) -> memoryview:
        """Read ``size`` bytes (all bytes up to the end when negative or None).

        Blocks until the bytes are buffered; returns fewer only when the stream ends first, and
        an empty memoryview at the end.
        """
        want = -1 if size is None else size
        if want == 0:
            return memoryview(b"")
        with self._cond:
            self._wait_for(want)
            take = self._buffered if want < 0 else min(want, self._buffered)
            return self._take(take)

    def read1(self, size: int = -1) -> memoryview:
        """Read up to ``size`` bytes from the current chunk only, waiting for at least one byte."""
        if size == 0:
            return memoryview(b"")
        with self._cond:
            self._wait_for(1)
            if self._buffered == 0:
                return memoryview(b"")
            head_left = self._chunks[0].nbytes - self._offset
            return self._take(head_left if size < 0 else min(size, head_left))

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        """Copy up to ``len(b)`` bytes into ``b``; return how many (0 at the end)."""
        target = memoryview(b).cast("B")
        if target.nbytes == 0:
            return 0
        with self._cond:
            self._wait_for(target.nbytes)
            count = min(target.nbytes, self._buffered)
            self._copy_into(target, count)
            return count

    # ---- internals (all called with self._cond held) ----

    def _wait_for(self, want: int) -> None:
        """Block until ``want`` bytes are buffered (all of them when negative) or input ended."""
        while True:
            if self._error is not None:
                raise self._error
            if self.closed:
                raise ValueError("read from a closed ZeroCopyByteStream")
            if self._input_done or (want >= 0 and self._buffered >= want):
                return
            self._cond.wait()

    def _take(self, count: int) -> memoryview:
        """Consume ``count`` buffered bytes: a slice of one chunk, or one joined copy."""
        if count == 0:
            return memoryview(b"")
        head = self._chunks[0]
        if head.nbytes - self._offset >= count:
            view = head[self._offset : self._offset + count]
            self._advance(count)
            return view
        joined = bytearray(count)
        self._copy_into(memoryview(joined), count)
        return memoryview(joined)

    def _copy_into(self, target: memoryview, count: int) -> None:
        """Consume ``count`` buffered bytes by copying them into ``target``."""
        written = 0
        while written < count:
            head = self._chunks[0]
            part = min(count - written, head.nbytes - self._offset)
            target[written : written + part] = head[self._offset : self._offset + part]
            self._advance(part)
            written += part

    def _advance(self, count: int) -> None:
        """Move the read position ``count`` bytes forward inside the head chunk."""
        self._offset += count
        self._buffered -= count
        self._consumed += count
        if self._offset == self._chunks[0].nbytes:
            self._chunks.popleft()
            self._offset = 0


def _as_byte_view(chunk: Chunk) -> memoryview:
    """Return a flat unsigned-byte memoryview over ``chunk`` without copying it."""
    if chunk is None or isinstance(chunk, str):
        raise TypeError(
            "a ZeroCopyByteStream chunk must be bytes, bytearray, memoryview or pyarrow.Buffer, "
            f"not {type(chunk).__name__}"
        )
    try:
        view = memoryview(chunk)
    except TypeError as exc:
        raise TypeError(
            "a ZeroCopyByteStream chunk must be bytes, bytearray, memoryview or pyarrow.Buffer, "
            f"not {type(chunk).__name__}"
        ) from exc
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    return view
