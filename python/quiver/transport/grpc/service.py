"""The ``UdfWorker`` service: Execute calls (one execution each) and Manage, every call checked.

Each Execute call is one execution, driven by its own Conversation of the runtime on a thread of the
server's pool, so executions on different calls run side by side. Manage answers heartbeats and
shuts the worker down. Every call must carry the worker's secret in the metadata
``quiver-secret``.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc
from google.protobuf.message import Message

from quiver._proto import pb
from quiver.protocol.grpc_codec import decode_engine_message, encode_worker_message
from quiver.protocol.items import EngineItem, WorkerItem
from quiver.transport.base import ConversationFactory
from quiver.transport.grpc.call import ExecuteCall

SECRET_METADATA_KEY = "quiver-secret"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["UdfWorker"].full_name  # "quiver.v1.UdfWorker"
# Executions served at once; one more Execute call is refused with RESOURCE_EXHAUSTED.
MAX_EXECUTIONS = 8
# How long Shutdown{cancel_running} waits for running executions to answer CancelResponse: a UDF
# is only stopped between batches, and one stuck inside a batch must not keep the worker alive.
CANCEL_WAIT_SECONDS = 10.0


def worker_service_handler(
    service_name: str,
    execute: tuple[Callable[..., Any], Callable[[bytes], Any], Callable[[Any], bytes]],
    manage: tuple[Callable[..., Any], type[Message], type[Message]],
) -> grpc.GenericRpcHandler:
    """The handler of a ``UdfWorker`` service: quiver.v1's and Spark's have the same two calls.

    ``execute`` is the streaming call with the hand-written codec that reads and writes Arrow
    bytes without copying them (decode, encode); ``manage`` the unary call with its protobuf
    request and response messages.
    """
    serve_execute, decode, encode = execute
    serve_manage, manage_request, manage_response = manage
    return grpc.method_handlers_generic_handler(
        service_name,
        {
            "Execute": grpc.stream_stream_rpc_method_handler(
                serve_execute, request_deserializer=decode, response_serializer=encode
            ),
            "Manage": grpc.unary_unary_rpc_method_handler(
                serve_manage,
                request_deserializer=manage_request.FromString,
                response_serializer=manage_response.SerializeToString,
            ),
        },
    )


class UdfWorkerServicer:
    """Serve Execute and Manage, checking every call's secret."""

    def __init__(
        self,
        hello: pb.Hello,
        secret: bytes,
        log: logging.Logger,
        new_conversation: ConversationFactory,
    ) -> None:
        """Serve as ``hello`` says, accepting calls that carry ``secret``."""
        self.hello = hello  # no secret: it goes out in ManageResponse
        self.log = log
        self._secret = secret
        self._new_conversation = new_conversation
        self._cond = threading.Condition()
        self._calls: set[ExecuteCall] = set()
        self._refused_calls = 0
        self._closing = False
        self.shutdown_requested = threading.Event()

    def handler(self) -> grpc.GenericRpcHandler:
        """Return the service's handler, with the hand-written codec for Execute."""
        return worker_service_handler(
            SERVICE_NAME,
            execute=(self.execute, decode_engine_message, encode_worker_message),
            manage=(self.manage, pb.ManageRequest, pb.ManageResponse),
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
        call = ExecuteCall(requests, context, self.log, self._new_conversation)
        self._admit(call, context)
        # The call counts as running until grpcio has ended the RPC, not when this generator
        # returns: its last answer (a CancelResponse, say) may still wait to be sent, and a
        # Shutdown that stopped the server then would cut it off.
        if not context.add_callback(lambda: self._forget(call)):
            self._forget(call)
        yield from call.run()

    def _forget(self, call: ExecuteCall) -> None:
        """Drop an ended call from the running ones and wake a Shutdown waiting on them."""
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

    def _admit(self, call: ExecuteCall, context: grpc.ServicerContext) -> None:
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
