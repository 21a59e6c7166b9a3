"""The ``grpc`` transport's adapter: serve the quiver.v1 ``UdfWorker`` service with grpcio.

The worker is the server. Each Execute call is one execution, driven by its own
:class:`~quiver.worker.state_machine.WorkerStateMachine` on a thread of the server's pool, so
executions on different calls run side by side. Manage answers heartbeats and shuts the worker down.
Every call must carry the worker's secret in the metadata ``quiver-secret``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import stat
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NoReturn

import grpc
import pyarrow as pa

from quiver._proto import pb
from quiver.io import ZeroCopyByteStream
from quiver.protocol.grpc_codec import (
    EngineItem,
    IncomingBatch,
    OutgoingBatch,
    UndecodableMessage,
    WorkerItem,
    decode_engine_message,
    encode_worker_message,
)
from quiver.worker.connection import EndpointError
from quiver.worker.state_machine import State, WorkerStateMachine, worker_hello

SECRET_METADATA_KEY = "quiver-secret"
GRPC_UNIX_SCHEME = "grpc+unix:"
GRPC_TCP_SCHEME = "grpc+tcp:"
LOOPBACK_HOST = "127.0.0.1"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["UdfWorker"].full_name  # "quiver.v1.UdfWorker"
# Executions served at once; one more Execute call is refused with RESOURCE_EXHAUSTED.
MAX_EXECUTIONS = 8
# Each execution holds a pool thread for its whole call; the spare ones keep Manage answering
# (heartbeats, shutdown) when every execution slot is taken.
POOL_THREADS = MAX_EXECUTIONS + 4
# The same limit as a uds frame body: a batch larger than gRPC's 4 MiB default must get through.
MAX_MESSAGE_BYTES = 2**31 - 1
# Requests of one call read ahead while looking for a Cancel; past this, gRPC's flow control
# holds the engine back (its own in-flight window is smaller anyway).
READ_AHEAD = 256
# How long Shutdown{cancel_running} waits for running executions to answer CancelResponse: a UDF
# is only stopped between batches, and one stuck inside a batch must not keep the worker alive.
CANCEL_WAIT_SECONDS = 10.0
# How long a stopping server lets calls still in progress finish before cancelling them.
STOP_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class GrpcEndpoint:
    """Name where the worker listens: a Unix socket path or a TCP host and port."""

    unix_path: str | None = None
    host: str = LOOPBACK_HOST
    port: int = 0

    @property
    def address(self) -> str:
        """Return the address grpcio binds: ``unix:/path`` or ``HOST:PORT``."""
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        return f"{_bracketed(self.host)}:{self.port}"

    @property
    def is_local(self) -> bool:
        """Tell whether only this machine can reach the endpoint (a Unix socket or loopback)."""
        if self.unix_path is not None or self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything

    def with_port(self, port: int) -> GrpcEndpoint:
        """Return the endpoint with the port the server actually bound (for port 0)."""
        return self if self.unix_path is not None else GrpcEndpoint(None, self.host, port)

    def __str__(self) -> str:
        """Spell the endpoint the way --connection takes it."""
        if self.unix_path is not None:
            return f"{GRPC_UNIX_SCHEME}{self.unix_path}"
        return f"{GRPC_TCP_SCHEME}{_bracketed(self.host)}:{self.port}"


def parse_grpc_endpoint(endpoint: str) -> GrpcEndpoint:
    """Read ``grpc+unix:/path`` or ``grpc+tcp:HOST:PORT`` (an empty HOST means loopback)."""
    if endpoint.startswith(GRPC_UNIX_SCHEME):
        path = endpoint[len(GRPC_UNIX_SCHEME) :]
        if path.startswith("//"):
            path = path[2:]  # also accept the grpc+unix:///path spelling
        if not path:
            raise EndpointError(f"endpoint {endpoint!r} names no socket path")
        return GrpcEndpoint(unix_path=path)
    if endpoint.startswith(GRPC_TCP_SCHEME):
        rest = endpoint[len(GRPC_TCP_SCHEME) :]
        if rest.startswith("//"):
            rest = rest[2:]
        host, sep, port_text = rest.rpartition(":")
        if not sep or not port_text.isdigit() or int(port_text) > 65535:
            raise EndpointError(
                f"endpoint {endpoint!r} has no valid port: write grpc+tcp:HOST:PORT "
                "(grpc+tcp::PORT listens on 127.0.0.1)"
            )
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]  # [::1]
        return GrpcEndpoint(host=host or LOOPBACK_HOST, port=int(port_text))
    raise EndpointError(
        f"unsupported endpoint {endpoint!r}: the grpc transport listens on "
        "grpc+unix:/path/to/socket or grpc+tcp:HOST:PORT"
    )


def _bracketed(host: str) -> str:
    """Put an IPv6 address in brackets, as addresses with a port need."""
    return f"[{host}]" if ":" in host else host


# ---- one Execute call ----


_END = object()  # the request stream ended


@dataclass(frozen=True)
class _StopRequest:
    """Ask a call to cancel its execution from inside the worker (Shutdown, SIGTERM)."""

    reason: str


class _CallInbox:
    """Queue the requests of one Execute call, read ahead by a thread of its own.

    Reading ahead is what lets a batch see that a Cancel already waits behind it, so that the
    batches queued before a Cancel are dropped rather than run, as over uds.
    """

    def __init__(self, requests: Iterator[EngineItem], log: logging.Logger) -> None:
        """Hold the call's request iterator; nothing is read before :meth:`start`."""
        self._requests = requests
        self._log = log
        self._cond = threading.Condition()
        self._items: deque[EngineItem | _StopRequest] = deque()
        self._cancels = 0  # Cancel messages and stop requests among self._items
        self._ended = False  # no more requests will come
        self._closed = False  # the call is over: stop reading
        self.broken = False  # the call was cancelled or failed (nothing more can be sent)

    def start(self) -> None:
        """Start reading the requests."""
        threading.Thread(target=self._read, name="quiver-grpc-reader", daemon=True).start()

    def _read(self) -> None:
        """Move requests into the queue until the stream ends or the call is over."""
        try:
            for item in self._requests:
                with self._cond:
                    while len(self._items) >= READ_AHEAD and not self._closed:
                        self._cond.wait()
                    if self._closed:
                        return
                    self._append(item)
        except grpc.RpcError:
            self.broken = True  # the engine cancelled the call, or it broke
        except Exception as exc:  # grpcio's iterator should not raise others; end the call then
            self._log.warning("reading an Execute call failed: %r", exc)
            self.broken = True
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _append(self, item: EngineItem | _StopRequest) -> None:
        """Queue one item (with the lock held)."""
        self._items.append(item)
        if _is_cancel(item):
            self._cancels += 1
        self._cond.notify_all()

    def get(self) -> EngineItem | _StopRequest | object:
        """Return the next request, waiting for it, or ``_END`` when there are no more."""
        with self._cond:
            while not self._items and not self._ended and not self._closed:
                self._cond.wait()
            if not self._items:
                return _END
            item = self._items.popleft()
            if _is_cancel(item):
                self._cancels -= 1
            self._cond.notify_all()  # the reader may wait for room
            return item

    def cancel_ahead(self) -> bool:
        """Tell whether a Cancel (or a stop request) already waits in the queue."""
        with self._cond:
            return self._cancels > 0

    def request_stop(self, reason: str) -> None:
        """Queue a stop request behind what has arrived (past the read-ahead limit)."""
        with self._cond:
            self._append(_StopRequest(reason))

    def pending(self) -> int:
        """Return how many requests wait unread."""
        with self._cond:
            return len(self._items)

    def close(self) -> None:
        """Stop reading: the call is over."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _is_cancel(item: object) -> bool:
    """Tell whether a queued item stops the execution."""
    if isinstance(item, _StopRequest):
        return True
    return isinstance(item, pb.EngineMessage) and item.WhichOneof("kind") == "cancel"


class _ExecuteCall:
    """Serve one Execute call: feed its requests to a state machine, stream out the answers."""

    def __init__(
        self, requests: Iterator[EngineItem], context: grpc.ServicerContext, log: logging.Logger
    ) -> None:
        """Prepare the call; :meth:`run` serves it."""
        self.context = context
        self.log = log
        self.inbox = _CallInbox(requests, log)
        self.outbox: list[WorkerItem] = []
        self.machine = WorkerStateMachine(self, log, cancel_ahead=self.inbox.cancel_ahead)
        if not context.add_callback(self.inbox.close):
            self.inbox.close()  # the call is already over

    # ---- MessageSink ----

    def send_message(self, message: pb.WorkerMessage) -> None:
        """Queue a control message for the response stream."""
        self.outbox.append(message)

    def send_data(self, sequence: int, body: Sequence[bytes | pa.Buffer]) -> None:
        """Queue a result batch; grpcio needs one contiguous message, so it is joined here."""
        self.outbox.append(OutgoingBatch(sequence, pa.py_buffer(b"".join(body))))

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
                if item is _END:
                    self._on_requests_ended()
                    yield from self._drain()
                    return
                if isinstance(item, _StopRequest):
                    self._on_stop_request(item)
                else:
                    self._dispatch(item)  # type: ignore[arg-type]
                yield from self._drain()
                if self.machine.executions_ended:
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
            self.machine.close()
            self.inbox.close()

    def _dispatch(self, item: EngineItem) -> None:
        """Hand one request to the state machine."""
        if isinstance(item, IncomingBatch):
            # The Arrow reader takes slices of the received bytes from the stream, no copy.
            stream = ZeroCopyByteStream()
            stream.add_next_chunk(item.arrow_ipc)
            stream.finish()
            self.machine.on_batch(item.sequence, stream)
        elif isinstance(item, UndecodableMessage):
            self.machine.reject(item.reason)
        elif item.WhichOneof("kind") == "shutdown":
            self.machine.reject(
                "Shutdown is not a message of the Execute call: over grpc it is a Manage call"
            )
        else:
            self.machine.handle(item)

    def _on_stop_request(self, stop: _StopRequest) -> None:
        """Cancel the running execution, or end an idle call at once."""
        if self.machine.state is State.IDLE:
            self.context.abort(grpc.StatusCode.UNAVAILABLE, f"{stop.reason}; no execution ran")
        self.machine.on_cancel(pb.Cancel(reason=stop.reason))

    def _on_requests_ended(self) -> None:
        """Drop an execution whose engine half-closed (or cancelled) before Finish or Cancel."""
        if self.inbox.broken or not self.context.is_active():
            self.log.info("the engine cancelled an Execute call")
            self.outbox.clear()  # nothing can be sent any more
            return
        if self.machine.state is State.RUNNING:
            self.machine.reject("the Execute call's requests ended before Finish or Cancel")
        self.machine.close()

    def _drain(self) -> Iterator[WorkerItem]:
        """Yield the queued answers."""
        items, self.outbox = self.outbox, []
        yield from items


# ---- the service ----


class UdfWorkerServicer:
    """Serve Execute and Manage, checking every call's secret."""

    def __init__(self, worker_id: str, secret: bytes, log: logging.Logger) -> None:
        """Serve as ``worker_id``, accepting calls that carry ``secret``."""
        self.hello = worker_hello(worker_id)  # no secret: it goes out in ManageResponse
        self.log = log
        self._secret = secret
        self._cond = threading.Condition()
        self._calls: set[_ExecuteCall] = set()
        self._refused_calls = 0
        self._closing = False
        self.shutdown_requested = threading.Event()

    def handler(self) -> grpc.GenericRpcHandler:
        """Return the service's handler, with the hand-written codec for Execute."""
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Execute": grpc.stream_stream_rpc_method_handler(
                    self.execute,
                    request_deserializer=decode_engine_message,
                    response_serializer=encode_worker_message,
                ),
                "Manage": grpc.unary_unary_rpc_method_handler(
                    self.manage,
                    request_deserializer=pb.ManageRequest.FromString,
                    response_serializer=pb.ManageResponse.SerializeToString,
                ),
            },
        )

    @property
    def refused_calls(self) -> int:
        """Return how many calls were refused for a missing or wrong secret."""
        with self._cond:
            return self._refused_calls

    # ---- calls ----

    def execute(
        self, requests: Iterator[EngineItem], context: grpc.ServicerContext
    ) -> Iterator[WorkerItem]:
        """Serve one execution: Init, PayloadChunk*, Data*, Finish or Cancel."""
        self._authorize(context, "Execute")
        call = _ExecuteCall(requests, context, self.log)
        self._admit(call, context)
        try:
            yield from call.run()
        finally:
            with self._cond:
                self._calls.discard(call)
                self._cond.notify_all()

    def manage(self, request: pb.ManageRequest, context: grpc.ServicerContext) -> pb.ManageResponse:
        """Answer a heartbeat, or shut the worker down once the answer has left."""
        self._authorize(context, "Manage")
        kind = request.WhichOneof("kind")
        if kind == "heartbeat":
            return self._manage_response(heartbeat=pb.Heartbeat(nonce=request.heartbeat.nonce))
        if kind == "shutdown":
            cancel_running = request.shutdown.cancel_running
            self.close(cancel_running)
            # Stop the server only once the engine has its answer (or gave up on it).
            if not context.add_callback(self.shutdown_requested.set):
                self.shutdown_requested.set()
            return self._manage_response(shutdown=pb.Shutdown(cancel_running=cancel_running))
        _abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            "a ManageRequest holds no request (unknown or empty 'kind')",
        )

    def close(self, cancel_running: bool) -> None:
        """Refuse new executions, then wait for the running ones (cancelling them first)."""
        with self._cond:
            self._closing = True
            calls = list(self._calls)
        self.log.info(
            "Shutdown: %s %d running execution(s)",
            "cancelling" if cancel_running else "waiting for",
            len(calls),
        )
        if cancel_running:
            for call in calls:
                call.request_stop("the worker is shutting down")
        with self._cond:
            ended = self._cond.wait_for(
                lambda: not self._calls, CANCEL_WAIT_SECONDS if cancel_running else None
            )
            left = len(self._calls)
        if not ended:
            self.log.warning(
                "%d execution(s) did not stop within %.0f s (a UDF busy with a batch); "
                "stopping anyway",
                left,
                CANCEL_WAIT_SECONDS,
            )

    def cancel_all(self, reason: str) -> None:
        """Refuse new executions and ask the running ones to cancel (without waiting)."""
        with self._cond:
            self._closing = True
            calls = list(self._calls)
        for call in calls:
            call.request_stop(reason)

    # ---- helpers ----

    def _authorize(self, context: grpc.ServicerContext, method: str) -> None:
        """Abort the call with UNAUTHENTICATED unless it carries the worker's secret."""
        given = [
            value for key, value in context.invocation_metadata() if key == SECRET_METADATA_KEY
        ]
        if not given:
            problem = f"the call carries no {SECRET_METADATA_KEY} metadata"
        elif len(given) == 1 and hmac.compare_digest(_as_bytes(given[0]), self._secret):
            return
        else:
            problem = f"the {SECRET_METADATA_KEY} metadata is wrong"
        with self._cond:
            self._refused_calls += 1
        self.log.warning("refused a %s call from %s: %s", method, context.peer(), problem)
        _abort(
            context,
            grpc.StatusCode.UNAUTHENTICATED,
            f"{problem}: every call must carry the worker's secret (QUIVER_WORKER_SECRET)",
        )

    def _admit(self, call: _ExecuteCall, context: grpc.ServicerContext) -> None:
        """Register a new execution, or abort when shutting down or at the limit."""
        with self._cond:
            if self._closing:
                problem = (grpc.StatusCode.UNAVAILABLE, "the worker is shutting down")
            elif len(self._calls) >= MAX_EXECUTIONS:
                problem = (
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the worker runs at most {MAX_EXECUTIONS} executions at once",
                )
            else:
                self._calls.add(call)
                return
        _abort(context, *problem)

    def _manage_response(self, **kind: pb.Heartbeat | pb.Shutdown) -> pb.ManageResponse:
        """Build a ManageResponse that also says who answered and how many calls were refused."""
        return pb.ManageResponse(worker=self.hello, refused_calls=self.refused_calls, **kind)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    """End the call with a status (``context.abort`` raises)."""
    context.abort(code, details)
    raise AssertionError("unreachable: grpc.ServicerContext.abort raises")


def _as_bytes(value: str | bytes) -> bytes:
    """Return a metadata value as bytes (text keys give str, ``-bin`` keys bytes)."""
    return value if isinstance(value, bytes) else value.encode()


# ---- the server ----


class GrpcWorker:
    """Run a grpcio server with the UdfWorker service."""

    def __init__(
        self,
        server: grpc.Server,
        servicer: UdfWorkerServicer,
        endpoint: GrpcEndpoint,
        parent_pid: int,
    ) -> None:
        """Wrap a started server (see :meth:`start`)."""
        self.server = server
        self.servicer = servicer
        self.endpoint = endpoint
        self.parent_pid = parent_pid

    @classmethod
    def start(
        cls,
        connection: str,
        worker_id: str,
        secret: bytes,
        log: logging.Logger,
        tls: tuple[bytes, bytes] | None = None,
    ) -> GrpcWorker:
        """Bind ``connection`` and start serving; ``tls`` is (PEM key, PEM certificate chain).

        Raises EndpointError for an endpoint this worker does not serve, OSError when it
        cannot bind.
        """
        parent_pid = os.getppid()
        endpoint = parse_grpc_endpoint(connection)
        if tls is None and not endpoint.is_local:
            raise EndpointError(
                f"endpoint {connection!r} is reachable from other machines: listening there "
                "needs --tls-cert and --tls-key (plaintext is for loopback and Unix sockets)"
            )
        servicer = UdfWorkerServicer(worker_id, secret, log)
        server = grpc.server(
            ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="quiver-grpc"),
            handlers=[servicer.handler()],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),  # a second worker on the same port must fail
            ],
        )
        try:
            if tls is None:
                port = server.add_insecure_port(endpoint.address)
            else:
                credentials = grpc.ssl_server_credentials([tls])
                port = server.add_secure_port(endpoint.address, credentials)
        except RuntimeError as exc:  # grpcio reports a failed bind this way
            raise OSError(f"cannot listen on {connection}: {exc}") from None
        if port == 0:
            raise OSError(f"cannot listen on {connection}")
        server.start()
        if endpoint.unix_path is not None:
            _restrict_socket(endpoint.unix_path)
        return cls(server, servicer, endpoint.with_port(port), parent_pid)

    def wait_for_shutdown(self) -> str:
        """Block until a Manage call asked for Shutdown or the starting process exited.

        Returns "shutdown" or "orphaned". Over uds the worker ends with the engine's connection;
        a server has no such connection, so the engine's death shows as the worker being
        handed to another parent (unless it started as a child of init already).
        """
        # Short waits: SIGTERM's handler must get to run on this (the main) thread.
        while not self.servicer.shutdown_requested.wait(0.2):
            if self.parent_pid != 1 and os.getppid() != self.parent_pid:
                return "orphaned"
        return "shutdown"

    def cancel_all(self, reason: str) -> None:
        """Ask every running execution to cancel."""
        self.servicer.cancel_all(reason)

    def stop(self) -> None:
        """Stop the server, giving calls in progress a short grace, and remove its socket."""
        self.server.stop(STOP_GRACE_SECONDS).wait()
        path = self.endpoint.unix_path
        if path is not None:
            try:
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)
            except OSError:
                pass  # already gone


def _restrict_socket(path: str) -> None:
    """Let only this user connect to the socket (the engine's folder should already be private)."""
    try:
        os.chmod(path, 0o600)
    except OSError:
        pass  # not fatal: every call must carry the secret anyway
