"""One ``Execute`` call of the gRPC transport: one execution, fed to a Conversation.

grpcio sends a call's answers from the thread that iterates its response generator, so the
conversation runs on a thread of its own and its answers go through a queue that the response
generator drains: an answer leaves as soon as it is sent, even while the conversation is still
busy with later batches (several batches of an async row UDF run at once, docs/async-udfs.md).
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import pyarrow as pa

from quiver._proto import pb
from quiver.protocol.items import EngineItem, OutgoingBatch, WorkerItem
from quiver.transport.base import ConversationFactory
from quiver.transport.inbox import END, Inbox, StopRequest

# The conversations' threads, kept between calls: an async UDF's event loop belongs to its
# thread (worker/async_calls.py), so a thread reused keeps the UDF's connection pools alive.
# The service runs at most 8 executions at once (service.MAX_EXECUTIONS).
_CONVERSATION_THREADS = ThreadPoolExecutor(
    max_workers=8, thread_name_prefix="quiver-grpc-conversation"
)


@dataclass(frozen=True)
class _Abort:
    """End the call with this status (``context.abort`` must run on grpcio's thread)."""

    code: grpc.StatusCode
    details: str


_DONE = object()  # the conversation is over: no more answers


class ExecuteCall:
    """Serve one Execute call: feed its requests to a Conversation, stream out the answers."""

    def __init__(
        self,
        requests: Iterator[EngineItem],
        context: grpc.ServicerContext,
        log: logging.Logger,
        new_conversation: ConversationFactory,
    ) -> None:
        """Prepare the call; :meth:`run` serves it."""
        self.context = context
        self.log = log
        self.inbox = Inbox(requests, log, "quiver-grpc-reader")
        self.answers: queue.SimpleQueue[WorkerItem | _Abort | object] = queue.SimpleQueue()
        self.conversation = new_conversation(self, self.inbox)
        if not context.add_callback(self.inbox.close):
            self.inbox.close()  # the call is already over

    # ---- MessageSink (called on the conversation's thread) ----

    def send_message(self, message: pb.WorkerMessage) -> None:
        """Queue a control message for the response stream."""
        self.answers.put(message)

    def send_data(self, sequence: int, body: Sequence[bytes | pa.Buffer]) -> None:
        """Queue a result batch; its pieces are joined once, with the envelope, when encoded."""
        self.answers.put(OutgoingBatch(sequence, tuple(body)))

    # ---- serving ----

    def request_stop(self, reason: str) -> None:
        """Ask the call to cancel its execution (answering CancelResponse) and end."""
        self.inbox.request_stop(reason)

    def run(self) -> Iterator[WorkerItem]:
        """Yield the answers as the conversation sends them, until it is over."""
        self.inbox.start()
        conversing = _CONVERSATION_THREADS.submit(self._converse)
        try:
            while (item := self.answers.get()) is not _DONE:
                if isinstance(item, _Abort):
                    self.context.abort(item.code, item.details)
                yield item  # type: ignore[misc]
            conversing.result()  # the conversation's own failure fails the call
        finally:
            # The call may have ended first (the engine cancelled it, or grpcio stopped asking
            # for answers): the conversation sees a closed inbox as a Cancel and winds down.
            self.inbox.close()
            _wait_quietly(conversing)

    def _converse(self) -> None:
        """Feed the requests to the conversation until its execution ended (own thread)."""
        try:
            while True:
                item = self.inbox.get()
                if item is END:
                    self._on_requests_ended()
                    return
                if isinstance(item, StopRequest):
                    if self.conversation.idle:
                        self.answers.put(
                            _Abort(grpc.StatusCode.UNAVAILABLE, f"{item.reason}; no execution ran")
                        )
                        return
                    self.conversation.cancel(item.reason)
                else:
                    self._dispatch(item)  # type: ignore[arg-type]
                if self.conversation.executions_ended:
                    # One execution per call: the call ends with its FinishResponse or
                    # CancelResponse, and anything the engine sent after that is not read.
                    if self.inbox.pending():
                        self.log.warning(
                            "%d message(s) after the end of the execution were ignored: an "
                            "Execute call carries one execution",
                            self.inbox.pending(),
                        )
                    return
        finally:
            try:
                self.conversation.close()
            finally:
                self.answers.put(_DONE)

    def _dispatch(self, item: EngineItem) -> None:
        """Hand one request to the conversation; Shutdown belongs to Manage here."""
        if isinstance(item, pb.EngineMessage) and item.WhichOneof("kind") == "shutdown":
            self.conversation.reject(
                "Shutdown is not a message of the Execute call: over grpc it is a Manage call"
            )
        else:
            self.conversation.handle(item)

    def _on_requests_ended(self) -> None:
        """Drop an execution whose engine half-closed (or cancelled) before Finish or Cancel."""
        error = self.inbox.error
        if error is not None and not isinstance(error, grpc.RpcError):
            self.log.warning("reading an Execute call failed: %r", error)
        if error is not None or not self.context.is_active():
            self.log.info("the engine cancelled an Execute call")
            return  # nothing can be sent any more: what is queued goes nowhere
        if self.conversation.running:
            self.conversation.reject("the Execute call's requests ended before Finish or Cancel")


def _wait_quietly(conversing: Future) -> None:
    """Wait for the conversation's thread to be done with this call; its error is told once."""
    try:
        conversing.result()
    except Exception:  # noqa: S110 - already raised to grpcio by run(), or moot: the call is over
        pass
