"""The engine's messages, read ahead on a thread of their own: the gRPC transport's inbox.

gRPC delivers the engine's requests on grpcio's threads, so its transport reads them into an
:class:`Inbox` (the socket transports read on the worker's own thread instead:
:class:`~quiver.transport.socket_inbox.SocketInbox`). Reading ahead is what lets a
batch see that a Cancel already waits behind it, so that the batches queued before a Cancel are
dropped rather than run (docs/protocol.md: "the worker stops, drops unanswered batches").
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from quiver._proto import pb
from quiver.protocol.items import EngineItem, IncomingBatch

# Items read ahead while looking for a Cancel; past this the reader waits, and the transport's
# own flow control holds the engine back (its in-flight window is smaller anyway).
READ_AHEAD = 256
# How often a waiting get() wakes up, so that SIGTERM's handler runs on the main thread soon.
_WAKE_SECONDS = 0.2


@dataclass(frozen=True)
class StopRequest:
    """Ask a conversation to cancel its execution from inside the worker (Shutdown, SIGTERM)."""

    reason: str


END = object()  # get() found no more items: the engine's side ended (see Inbox.error)


class Inbox:
    """Queue the items of one conversation, read from ``source`` by a thread of its own."""

    def __init__(self, source: Iterator[EngineItem], log: logging.Logger, name: str) -> None:
        """Hold the source; nothing is read before :meth:`start`."""
        self._source = source
        self._log = log
        self._name = name
        self._cond = threading.Condition()
        self._items: deque[EngineItem | StopRequest] = deque()
        self._cancels = 0  # Cancel messages and stop requests among self._items
        self._ended = False  # no more items will come
        self._closed = False  # the conversation is over: stop reading
        self.error: BaseException | None = None  # why the source ended, when it failed

    def start(self) -> None:
        """Start reading the source."""
        threading.Thread(target=self._read, name=self._name, daemon=True).start()

    def _read(self) -> None:
        """Move items into the queue until the source ends or the conversation is over."""
        try:
            for item in self._source:
                with self._cond:
                    while len(self._items) >= READ_AHEAD and not self._closed:
                        self._cond.wait()
                    if self._closed:
                        return
                    self._append(item)
        except Exception as exc:  # the source's failure is told to the consumer, in order
            self.error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _append(self, item: EngineItem | StopRequest) -> None:
        """Queue one item (with the lock held)."""
        self._items.append(item)
        if stops_execution(item):
            self._cancels += 1
        self._cond.notify_all()

    def get(self) -> EngineItem | StopRequest | object:
        """Return the next item, waiting for it, or ``END`` when there are no more."""
        with self._cond:
            while not self._items and not self._ended and not self._closed:
                self._cond.wait(_WAKE_SECONDS)
            if not self._items:
                return END
            item = self._items.popleft()
            if stops_execution(item):
                self._cancels -= 1
            self._cond.notify_all()  # the reader may wait for room
            return item

    def cancel_ahead(self) -> bool:
        """Tell whether a Cancel (or a stop request) already waits in the queue, or the engine
        ended the conversation (a cancelled or failed gRPC call): no answer can reach it."""
        with self._cond:
            return self._cancels > 0 or self._closed or self.error is not None

    def take_ready(self) -> EngineItem | None:
        """Return the next item if it arrived and is a batch or a heartbeat; never wait."""
        with self._cond:
            if not self._items or not taken_while_batches_run(self._items[0]):
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item  # type: ignore[return-value]

    def request_stop(self, reason: str) -> None:
        """Queue a stop request behind what has arrived (past the read-ahead limit)."""
        with self._cond:
            self._append(StopRequest(reason))

    def pending(self) -> int:
        """Return how many items wait unread."""
        with self._cond:
            return len(self._items)

    def close(self) -> None:
        """Stop reading: the conversation is over."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def stops_execution(item: object) -> bool:
    """Tell whether a queued item stops the execution (a Cancel or a stop request)."""
    if isinstance(item, StopRequest):
        return True
    return isinstance(item, pb.EngineMessage) and item.WhichOneof("kind") == "cancel"


def taken_while_batches_run(item: object) -> bool:
    """Tell whether a worker may take ``item`` while earlier batches still run: a batch (its
    answer follows theirs) or a heartbeat (echoed at once); anything else waits its turn."""
    if isinstance(item, IncomingBatch):
        return True
    return isinstance(item, pb.EngineMessage) and item.WhichOneof("kind") in ("data", "heartbeat")
