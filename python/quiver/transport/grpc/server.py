"""A grpcio server with the ``UdfWorker`` service: bind, serve, notice the engine's end, stop."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import grpc

from quiver.transport.base import (
    EXIT_CONNECTION_LOST,
    EXIT_USAGE,
    ConversationFactory,
    EndpointError,
    WorkerConfig,
)
from quiver.transport.grpc.endpoint import GrpcEndpoint, parse_grpc_endpoint
from quiver.transport.grpc.service import MAX_EXECUTIONS, UdfWorkerServicer

# Each execution holds a pool thread for its whole call; the spare ones keep Manage answering
# (heartbeats, shutdown) when every execution slot is taken.
POOL_THREADS = MAX_EXECUTIONS + 4
# The same limit as a uds frame body: a batch larger than gRPC's 4 MiB default must get through.
MAX_MESSAGE_BYTES = 2**31 - 1
# How long a server stopped by SIGTERM or the engine's exit lets calls still in progress finish
# before cancelling them.
STOP_GRACE_SECONDS = 2.0

# What a server's start function returns.
Started = TypeVar("Started")


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
    def start(cls, config: WorkerConfig, new_conversation: ConversationFactory) -> GrpcWorker:
        """Bind ``config.endpoint`` and start serving (with TLS when ``config.tls`` is set).

        Raises EndpointError for an endpoint this worker does not serve, OSError when it
        cannot bind.
        """
        connection, tls = config.endpoint, config.tls
        parent_pid = os.getppid()
        endpoint = parse_grpc_endpoint(connection)
        if tls is None and not endpoint.is_local:
            raise EndpointError(
                f"endpoint {connection!r} is reachable from other machines: listening there "
                "needs --tls-cert and --tls-key (plaintext is for loopback and Unix sockets)"
            )
        servicer = UdfWorkerServicer(config.hello, config.secret, config.log, new_conversation)
        server = new_server(servicer.handler(), "quiver-grpc")
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
        """Stop the server and remove its socket.

        After Manage(shutdown) the executions have already ended (the servicer waited for them),
        so the server stops at once: a grace would only wait for the engine's idle connection to
        close, which grpcio's server does (up to the whole grace) before it reports stopped. Any
        other stop (SIGTERM, the engine gone) gives calls in progress a short grace.
        """
        grace = 0 if self.servicer.shutdown_requested.is_set() else STOP_GRACE_SECONDS
        self.server.stop(grace).wait()
        if self.endpoint.unix_path is not None:
            remove_socket(self.endpoint.unix_path)


def start_or_exit_status(start: Callable[[], Started], log: logging.Logger) -> Started | int:
    """Start a server with ``start``; when it cannot start, log why and return the exit status.

    An endpoint the worker does not serve (EndpointError) is a usage error; one it cannot bind
    (OSError) is a lost connection.
    """
    try:
        return start()
    except EndpointError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except OSError as exc:
        log.error("%s", exc)
        return EXIT_CONNECTION_LOST


def new_server(handler: grpc.GenericRpcHandler, thread_name_prefix: str) -> grpc.Server:
    """A grpcio server for ``handler``, not yet bound, that takes messages of any batch's size."""
    return grpc.server(
        ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix=thread_name_prefix),
        handlers=[handler],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),  # a second worker on the same port must fail
        ],
    )


def remove_socket(path: str) -> None:
    """Remove the worker's socket file (only a socket: never a file put there since)."""
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
