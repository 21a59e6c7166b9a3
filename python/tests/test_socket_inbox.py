"""The socket transports' inbox: frames read on the worker's own thread, a Cancel seen ahead."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from quiver._proto import pb
from quiver.protocol.framing import DEFAULT_LIMITS, FramingError, encode_control_frame
from quiver.protocol.framing import encode_data_frame as data_frame
from quiver.protocol.items import IncomingBatch
from quiver.transport.inbox import END
from quiver.transport.socket_inbox import SocketInbox
from quiver.transport.uds import frame_item, send_frame

LOG = logging.getLogger("test")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(engine end, worker end) of a real Unix stream socket pair."""
    engine, worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    yield engine, worker
    engine.close()
    worker.close()


def _cancel() -> list:
    return encode_control_frame(pb.EngineMessage(cancel=pb.Cancel(reason="t")).SerializeToString())


def _inbox(worker: socket.socket) -> SocketInbox:
    return SocketInbox(worker, frame_item, DEFAULT_LIMITS, LOG)


def test_items_come_in_order_and_the_end_of_the_stream_ends_them(pair) -> None:
    engine, worker = pair
    for sequence in (3, 5):
        send_frame(engine, data_frame(sequence, b"x" * sequence))
    engine.shutdown(socket.SHUT_WR)
    inbox = _inbox(worker)
    first, second = inbox.get(), inbox.get()
    assert isinstance(first, IncomingBatch) and first.sequence == 3
    assert isinstance(second, IncomingBatch) and bytes(second.arrow_ipc) == b"xxxxx"
    assert inbox.get() is END and inbox.error is None


def test_a_cancel_already_sent_is_seen_behind_the_batch_being_run(pair) -> None:
    engine, worker = pair
    send_frame(engine, data_frame(0, b"a"))
    inbox = _inbox(worker)
    assert isinstance(inbox.get(), IncomingBatch)
    assert not inbox.cancel_ahead(), "nothing was sent after the batch"
    send_frame(engine, data_frame(1, b"b"))
    send_frame(engine, _cancel())
    assert inbox.cancel_ahead()
    assert inbox.pending() == 2  # the batch before the Cancel, and the Cancel
    assert isinstance(inbox.get(), IncomingBatch)
    cancel = inbox.get()
    assert isinstance(cancel, pb.EngineMessage) and cancel.WhichOneof("kind") == "cancel"
    assert not inbox.cancel_ahead()


def test_looking_ahead_never_waits_for_a_frame_that_is_only_partly_sent(pair) -> None:
    engine, worker = pair
    frame = b"".join(bytes(memoryview(part)) for part in data_frame(7, b"y" * 1000))
    engine.sendall(frame[:500])
    inbox = _inbox(worker)
    started = time.monotonic()
    assert not inbox.cancel_ahead()
    assert time.monotonic() - started < 1.0
    engine.sendall(frame[500:])
    batch = inbox.get()
    assert isinstance(batch, IncomingBatch) and batch.sequence == 7
    assert bytes(batch.arrow_ipc) == b"y" * 1000


def test_a_broken_frame_ends_the_items_after_the_ones_before_it(pair) -> None:
    engine, worker = pair
    send_frame(engine, data_frame(0, b"ok"))
    engine.sendall(b"\x00" * 64)  # not a frame header
    inbox = _inbox(worker)
    assert not inbox.cancel_ahead()  # reads both; the bad header is kept for later
    assert isinstance(inbox.get(), IncomingBatch)
    assert inbox.get() is END
    assert isinstance(inbox.error, FramingError)


def test_a_blocked_get_returns_when_the_engine_sends(pair) -> None:
    engine, worker = pair
    inbox = _inbox(worker)
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(inbox.get()))
    reader.start()
    time.sleep(0.1)
    assert got == [], "get() returned before anything was sent"
    send_frame(engine, data_frame(9, b"z"))
    reader.join(timeout=5)
    assert isinstance(got[0], IncomingBatch) and got[0].sequence == 9
