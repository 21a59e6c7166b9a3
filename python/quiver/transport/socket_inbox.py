"""The engine's frames, read on the worker's own thread: no hand-off between threads per batch.

The socket transports (uds, shm) read the engine's frames where they are used. Handing every
frame from a reader thread to the main thread (:class:`~quiver.transport.inbox.Inbox`, which the
gRPC transport keeps: grpcio delivers requests on its own threads) costs two thread wake-ups
per batch, the larger part of a small batch's round trip. Here the main thread blocks in
``recv`` only when it has nothing to do, and looks for a Cancel behind a batch by reading,
without blocking, whatever the engine has already sent (docs/protocol.md: a worker "need not
read ahead"; the engine reads answers while it sends).

A stop signal (SIGTERM, SIGINT) interrupts a blocking ``recv``, so its handler runs at once.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Callable

from quiver.protocol.framing import Frame, FrameDecoder, FrameLimits
from quiver.protocol.items import EngineItem
from quiver.transport.inbox import (
    END,
    READ_AHEAD,
    StopRequest,
    stops_execution,
    taken_while_batches_run,
)

# Turns a frame into the item it carries; None when the transport consumed it (shm's releases).
FrameToItem = Callable[[Frame], EngineItem | None]


class SocketInbox:
    """Queue the items of one conversation, read from a blocking socket by whoever asks."""

    def __init__(
        self,
        sock: socket.socket,
        to_item: FrameToItem,
        limits: FrameLimits,
        log: logging.Logger,
    ) -> None:
        """Read ``sock``'s frames through a decoder of ``limits``; nothing is read yet."""
        self._sock = sock
        self._to_item = to_item
        self._decoder = FrameDecoder(limits)
        self._log = log
        self._items: deque[EngineItem | StopRequest] = deque()
        self._cancels = 0  # Cancel messages and stop requests among self._items
        self._ended = False  # the stream ended (EOF or a broken frame): nothing more to read
        self._closed = False
        self.error: BaseException | None = None  # why the stream ended, when it broke

    def get(self) -> EngineItem | StopRequest | object:
        """Return the next item, reading (blocking) when none is queued; ``END`` at the end."""
        while not self._items:
            if self._ended or self._closed or not self._read(blocking=True):
                return END
        item = self._items.popleft()
        if stops_execution(item):
            self._cancels -= 1
        return item

    def cancel_ahead(self) -> bool:
        """Tell whether a Cancel (or a stop request) has already arrived behind what was read."""
        while len(self._items) < READ_AHEAD and self._read(blocking=False):
            pass
        return self._cancels > 0

    def take_ready(self) -> EngineItem | None:
        """Return the next item if it arrived and is a batch or a heartbeat; never wait."""
        while not self._items and self._read(blocking=False):
            pass  # a large batch takes several reads
        if not self._items or not taken_while_batches_run(self._items[0]):
            return None
        return self._items.popleft()  # type: ignore[return-value]

    def at_rest(self) -> bool:
        """Tell whether the next byte on the socket starts a frame and nothing waits here: another
        reader (the native batch loop, worker/native_batches.py) may then read the socket."""
        return (
            not self._items
            and self._decoder.pending_bytes == 0
            and not self._ended
            and not self._closed
        )

    def give_back(self, data: bytes, error: OSError | None) -> None:
        """Take the bytes another reader read from the socket and left unhandled, as if read
        here (they start at a frame boundary), then the error that stopped its reading."""
        if data:
            try:
                frames = self._decoder.feed(data)
            except Exception as exc:  # a broken frame, told to the consumer as _read tells it
                self._ended = True
                self.error = exc
                return
            for frame in frames:
                item = self._to_item(frame)
                if item is not None:
                    self._append(item)
        if error is not None:
            self._ended = True
            self.error = error

    def pending(self) -> int:
        """Return how many items were read and wait unused."""
        return len(self._items)

    def close(self) -> None:
        """The conversation is over: read nothing more."""
        self._closed = True

    def _read(self, blocking: bool) -> bool:
        """Read what the socket has (waiting for it when ``blocking``) and queue the items it
        completes; False when nothing came (or the stream ended)."""
        if self._ended or self._closed:
            return False
        flags = 0 if blocking else socket.MSG_DONTWAIT
        try:
            count = self._sock.recv_into(self._decoder.next_buffer(), 0, flags)
            if count == 0:
                self._ended = True
                self._decoder.close()  # raises inside a frame: the stream broke
                return False
            frame = self._decoder.advance(count)
        except BlockingIOError:
            return False
        except Exception as exc:  # told to the consumer after the items before it, in order
            self._ended = True
            self.error = exc
            return False
        if frame is not None:
            item = self._to_item(frame)
            if item is not None:
                self._append(item)
        return True

    def _append(self, item: EngineItem | StopRequest) -> None:
        """Queue one item."""
        self._items.append(item)
        if stops_execution(item):
            self._cancels += 1
