"""The ``uds`` transport: connect to the engine's Unix socket, say Hello, speak frames.

The worker side of docs/protocol.md, section 4. Bytes are received straight into the memory the
:class:`~quiver.protocol.framing.FrameDecoder` asks for (a body into its aligned Arrow buffer);
frames become engine items on the worker's own thread
(:class:`~quiver.transport.socket_inbox.SocketInbox`), and a frame that breaks the framing gets a
ProtocolError answer before the worker closes and exits 1.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable, Sequence

import pyarrow as pa

from quiver._proto import pb
from quiver.protocol.framing import (
    DEFAULT_LIMITS,
    BytesLike,
    Frame,
    FrameDecoder,
    FrameLimits,
    FramingError,
    encode_control_frame,
    encode_data_frame,
)
from quiver.protocol.items import (
    EngineItem,
    IncomingBatch,
    UndecodableMessage,
    parse_engine_message,
)
from quiver.transport.base import (
    EXIT_CONNECTION_LOST,
    EXIT_OK,
    EXIT_USAGE,
    ChannelClosed,
    Conversation,
    ConversationFactory,
    EndpointError,
    WorkerConfig,
)
from quiver.transport.inbox import END, StopRequest
from quiver.transport.socket_inbox import FrameToItem, SocketInbox

UNIX_SCHEME = "unix:"
# Linux refuses sendmsg with more than IOV_MAX (1024) buffers.
_IOV_MAX = 1024


def unix_socket_path(endpoint: str) -> str:
    """Return the socket path of a ``unix:/path`` endpoint."""
    if not endpoint.startswith(UNIX_SCHEME):
        raise EndpointError(
            f"unsupported endpoint {endpoint!r}: this worker speaks the uds transport, "
            "whose endpoints look like unix:/path/to/socket"
        )
    path = endpoint[len(UNIX_SCHEME) :]
    if path.startswith("//"):
        path = path[2:]  # also accept the unix:///path spelling
    if not path:
        raise EndpointError(f"endpoint {endpoint!r} names no socket path")
    return path


# ---- socket I/O (the engine-side test harness uses these too) ----


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


def receive_frame(sock: socket.socket, decoder: FrameDecoder) -> Frame | None:
    """Read one frame through ``decoder``; return None on EOF at a frame boundary.

    Raises FramingError for a bad frame, TruncatedFrameError when EOF comes inside one.
    """
    while True:
        count = sock.recv_into(decoder.next_buffer())
        if count == 0:
            decoder.close()
            return None
        frame = decoder.advance(count)
        if frame is not None:
            return frame


def read_frame(sock: socket.socket, limits: FrameLimits = DEFAULT_LIMITS) -> Frame | None:
    """Read one frame from a blocking socket (a decoder of its own: no bytes past the frame)."""
    return receive_frame(sock, FrameDecoder(limits))


def frame_item(frame: Frame) -> EngineItem:
    """Turn one frame into an engine item: a data frame is a batch, a control frame a message."""
    if not frame.is_control:
        return IncomingBatch(frame.sequence, frame.body)
    message = parse_engine_message(frame.metadata, "a control frame")
    if isinstance(message, pb.EngineMessage) and message.WhichOneof("kind") == "data":
        return UndecodableMessage(
            "EngineMessage.data must not be sent over uds; batches travel as data frames"
        )
    return message


# ---- the connection ----


class UdsConnection:
    """The worker's end of the engine's socket: it sends frames; an Inbox reads them."""

    def __init__(self, sock: socket.socket) -> None:
        """Wrap a connected, blocking stream socket."""
        self.sock = sock

    @classmethod
    def connect(cls, endpoint: str) -> UdsConnection:
        """Connect to the engine's listening socket."""
        path = unix_socket_path(endpoint)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        return cls(sock)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def send_message(self, message: pb.WorkerMessage) -> None:
        """Send one WorkerMessage as a control frame."""
        self._send(encode_control_frame(message.SerializeToString()))

    def send_data(self, sequence: int, body: Sequence[bytes | pa.Buffer]) -> None:
        """Send one data frame; the body goes out straight from the Arrow buffers."""
        self._send(encode_data_frame(sequence, body))

    def _send(self, buffers: list[BytesLike]) -> None:
        """Send a frame; a broken socket ends the conversation."""
        try:
            send_frame(self.sock, buffers)
        except OSError as exc:
            raise ChannelClosed(f"cannot write to the engine's socket: {exc}") from exc


# ---- the transport ----


class UdsTransport:
    """Connect to ``unix:PATH``, send Hello, serve executions until EOF or Shutdown."""

    name = "uds"
    schemes = (UNIX_SCHEME,)

    def serve(self, config: WorkerConfig, new_conversation: ConversationFactory) -> int:
        """Serve the one connection; return the exit status."""
        log = config.log
        try:
            conn = UdsConnection.connect(config.endpoint)
        except EndpointError as exc:
            log.error("%s", exc)
            return EXIT_USAGE
        except OSError as exc:
            log.error("cannot connect to %s: %s", config.endpoint, exc)
            return EXIT_CONNECTION_LOST
        return serve_connected(conn, config, new_conversation, frame_item)


def serve_connected(
    conn: UdsConnection,
    config: WorkerConfig,
    new_conversation: ConversationFactory,
    to_item: FrameToItem,
    open_connection: Callable[[], None] | None = None,
) -> int:
    """Serve a connected socket: send Hello, run the transport's own `open_connection` step
    (shm: take the arenas), then feed the engine's frames, turned into items by `to_item`, to a
    conversation until EOF or Shutdown; close `conn` whatever happens and return the exit status."""
    log = config.log
    try:
        log.info("connected to %s (pid %d)", config.endpoint, config.hello.pid)
        send_hello(conn, config)
        if open_connection is not None:
            open_connection()
        inbox = SocketInbox(conn.sock, to_item, DEFAULT_LIMITS, log)
        conversation = new_conversation(conn, inbox)
        return _converse(inbox, conversation, conn, log)
    except ChannelClosed as exc:
        log.error("connection to the engine lost: %s", exc)
        return EXIT_CONNECTION_LOST
    finally:
        conn.close()


def send_hello(conn: UdsConnection, config: WorkerConfig) -> None:
    """Send the worker's Hello, with the secret, as the connection's first message."""
    hello = pb.Hello()
    hello.CopyFrom(config.hello)
    hello.secret = config.secret
    conn.send_message(pb.WorkerMessage(hello=hello))


def _converse(
    inbox: SocketInbox, conversation: Conversation, conn: UdsConnection, log: logging.Logger
) -> int:
    """Feed the conversation until the engine closes the connection or says Shutdown."""
    # The worker's state machine lets its native batch loop read the socket between items.
    serve_natively = getattr(conversation, "serve_natively", None)
    try:
        while True:
            if serve_natively is not None:
                serve_natively()
            if (item := inbox.get()) is END:
                break
            if isinstance(item, pb.EngineMessage) and item.WhichOneof("kind") == "shutdown":
                if _on_shutdown(item.shutdown, conversation, conn, log):
                    return EXIT_OK
            elif not isinstance(item, StopRequest):
                conversation.handle(item)  # type: ignore[arg-type]
    finally:
        conversation.close()
        inbox.close()
    if inbox.error is None:
        log.info("the engine closed the connection; exiting")
        return EXIT_OK
    return _on_broken_stream(inbox.error, conn, log)


def _on_shutdown(
    shutdown: pb.Shutdown, conversation: Conversation, conn: UdsConnection, log
) -> bool:
    """Echo Shutdown and tell the caller to exit (only when idle, unless cancel_running)."""
    if not conversation.idle and not shutdown.cancel_running:
        conversation.reject("Shutdown during an execution (set cancel_running to stop it)")
        return False
    conversation.close()
    conn.send_message(
        pb.WorkerMessage(shutdown=pb.Shutdown(cancel_running=shutdown.cancel_running))
    )
    log.info("Shutdown: exiting")
    return True


def _on_broken_stream(error: BaseException, conn: UdsConnection, log: logging.Logger) -> int:
    """Answer a stream that broke the framing with a ProtocolError (if the engine still reads)."""
    log.error("connection to the engine lost: %s", error)
    if isinstance(error, FramingError):
        reason = f"the worker received bytes that break the uds framing: {error}"
        message = pb.WorkerMessage(error=pb.Error(protocol_error=pb.ProtocolError(message=reason)))
        try:
            conn.send_message(message)
        except ChannelClosed:
            pass  # the engine is gone already; the log says why the worker stopped
    return EXIT_CONNECTION_LOST
