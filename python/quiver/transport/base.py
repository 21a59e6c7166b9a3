"""The one interface between the worker's runtime and a transport (see :mod:`quiver.transport`).

A transport meets the engine at an endpoint, authenticates, turns its bytes into
:data:`~quiver.protocol.items.EngineItem` values and carries answers back. For every conversation
with the engine (the uds connection; one gRPC ``Execute`` call) it asks the runtime for a
:class:`Conversation` and feeds it the items in order. The runtime never sees a socket or a call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from quiver._proto import pb
from quiver.protocol.items import EngineItem

# The worker's exit statuses (python -m quiver.worker): a transport's serve() returns one.
EXIT_OK = 0
EXIT_CONNECTION_LOST = 1
EXIT_USAGE = 2


class EndpointError(ValueError):
    """The --connection endpoint is not one this worker can connect to or serve on."""


class ChannelClosed(Exception):
    """The engine can no longer be answered (the connection broke); the conversation is over."""


class MessageSink(Protocol):
    """Carry the runtime's answers to the engine; raises ChannelClosed when that is impossible."""

    def send_message(self, message: pb.WorkerMessage) -> None:
        """Send one control message."""

    def send_data(self, sequence: int, body: Sequence[bytes | pa.Buffer]) -> None:
        """Send the result batch of ``sequence`` (one Arrow IPC stream, as buffers)."""


class Conversation(Protocol):
    """The worker's runtime for one conversation, as a transport drives it."""

    @property
    def idle(self) -> bool:
        """Tell whether no execution is under way."""

    @property
    def running(self) -> bool:
        """Tell whether an execution is under way and has not failed."""

    @property
    def executions_ended(self) -> int:
        """Count the FinishResponse / CancelResponse answers sent so far."""

    def handle(self, item: EngineItem) -> None:
        """Act on one item from the engine (never Shutdown: its meaning is the transport's)."""

    def reject(self, reason: str) -> None:
        """Answer something not allowed here with a ProtocolError."""

    def cancel(self, reason: str) -> None:
        """Cancel the running execution from the worker's side, answering CancelResponse."""

    def close(self) -> None:
        """Stop the UDFs of the current execution, if any."""


class Lookahead(Protocol):
    """What a conversation may learn of the engine's items it has not been handed yet."""

    def cancel_ahead(self) -> bool:
        """Tell whether a Cancel (or a stop request) already waits behind what was handed."""

    def take_ready(self) -> EngineItem | None:
        """Take the next item if it already arrived and is a batch or a heartbeat (worker
        items a conversation may act on while its earlier batches run); never wait."""


# Makes the Conversation of one connection or call from where answers go and what it may
# learn of the items that wait.
ConversationFactory = Callable[[MessageSink, Lookahead], Conversation]


@dataclass(frozen=True)
class WorkerConfig:
    """What the command line and the environment say about this worker."""

    endpoint: str
    hello: pb.Hello  # who the worker is; a transport adds the secret where it must
    secret: bytes
    log: logging.Logger
    tls: tuple[bytes, bytes] | None = None  # (PEM key, PEM certificate chain)


class Transport(Protocol):
    """One way of meeting the engine, chosen by the endpoint's scheme."""

    name: str  # as in --transport
    schemes: tuple[str, ...]  # the endpoint prefixes it takes, e.g. "unix:"

    def serve(self, config: WorkerConfig, new_conversation: ConversationFactory) -> int:
        """Serve the engine until it is done with this worker; return the exit status.

        SIGTERM reaches the caller as an exception, which serve() lets through after cleaning up.
        """
