"""One ``Execute`` call of the gRPC transport: one execution, fed to a Conversation."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import grpc
import pyarrow as pa

from quiver._proto import pb
from quiver.protocol.items import EngineItem, OutgoingBatch, WorkerItem
from quiver.transport.base import ConversationFactory
from quiver.transport.inbox import END, Inbox, StopRequest


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
        self.outbox: list[WorkerItem] = []
        self.conversation = new_conversation(self, self.inbox)
        if not context.add_callback(self.inbox.close):
            self.inbox.close()  # the call is already over

    # ---- MessageSink ----

    def send_message(self, message: pb.WorkerMessage) -> None:
        """Queue a control message for the response stream."""
        self.outbox.append(message)

    def send_data(self, sequence: int, body: Sequence[bytes | pa.Buffer]) -> None:
        """Queue a result batch; its pieces are joined once, with the envelope, when encoded."""
        self.outbox.append(OutgoingBatch(sequence, tuple(body)))

    # ---- serving ----

    def request_stop(self, reason: str) -> None:
        """Ask the call to cancel its execution (answering CancelResponse) and end."""
        self.inbox.request_stop(reason)

    def run(self) -> Iterator[WorkerItem]:
        """Yield the answers until the execution ended or the requests ran out."""
        self.inbox.start()
        try:
            while True:
                item = self.inbox.get()
                if item is END:
                    self._on_requests_ended()
                    yield from self._drain()
                    return
                if isinstance(item, StopRequest):
                    self._on_stop_request(item)
                else:
                    self._dispatch(item)  # type: ignore[arg-type]
                yield from self._drain()
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
            self.conversation.close()
            self.inbox.close()

    def _dispatch(self, item: EngineItem) -> None:
        """Hand one request to the conversation; Shutdown belongs to Manage here."""
        if isinstance(item, pb.EngineMessage) and item.WhichOneof("kind") == "shutdown":
            self.conversation.reject(
                "Shutdown is not a message of the Execute call: over grpc it is a Manage call"
            )
        else:
            self.conversation.handle(item)

    def _on_stop_request(self, stop: StopRequest) -> None:
        """Cancel the running execution, or end an idle call at once."""
        if self.conversation.idle:
            self.context.abort(grpc.StatusCode.UNAVAILABLE, f"{stop.reason}; no execution ran")
        self.conversation.cancel(stop.reason)

    def _on_requests_ended(self) -> None:
        """Drop an execution whose engine half-closed (or cancelled) before Finish or Cancel."""
        error = self.inbox.error
        if error is not None and not isinstance(error, grpc.RpcError):
            self.log.warning("reading an Execute call failed: %r", error)
        if error is not None or not self.context.is_active():
            self.log.info("the engine cancelled an Execute call")
            self.outbox.clear()  # nothing can be sent any more
            return
        if self.conversation.running:
            self.conversation.reject("the Execute call's requests ended before Finish or Cancel")
        self.conversation.close()

    def _drain(self) -> Iterator[WorkerItem]:
        """Yield the queued answers."""
        items, self.outbox = self.outbox, []
        yield from items
