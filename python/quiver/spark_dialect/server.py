"""Serve Spark's ``UdfWorker`` with grpcio until Shutdown, SIGTERM or the engine's exit.

docs/spark-protocol.md, sections 1 and 7: a Unix socket is created with mode 0600; TCP is served
on loopback only unless TLS is configured; exit status 0 after Shutdown or SIGTERM, 1 when the
endpoint cannot be served, 2 on a usage error.
"""

from __future__ import annotations

import logging
import os
import sys

import grpc

from quiver.spark_dialect.endpoint import parse_connection
from quiver.spark_dialect.service import SparkWorkerService
from quiver.transport.base import EXIT_OK, EndpointError
from quiver.transport.grpc.endpoint import GrpcEndpoint
from quiver.transport.grpc.server import (
    STOP_GRACE_SECONDS,
    new_server,
    remove_socket,
    start_or_exit_status,
)

# How long SIGTERM lets the open streams deliver their CancelResponse before the server stops.
SIGTERM_GRACE_SECONDS = 2.0
# Sockets are created owner-only; the umask is set around the bind so there is no window in
# which another user could connect.
_SOCKET_UMASK = 0o177


class SparkServer:
    """A started grpcio server with Spark's UdfWorker service on one or two endpoints."""

    def __init__(
        self, server: grpc.Server, service: SparkWorkerService, endpoints: list[GrpcEndpoint]
    ) -> None:
        """Wrap a started server (see :func:`start`)."""
        self.server = server
        self.service = service
        self.endpoints = endpoints
        self.parent_pid = os.getppid()

    def wait(self) -> str:
        """Block until Shutdown was answered and the streams ended, or the engine exited.

        Returns "shutdown" or "orphaned". Short waits: SIGTERM's handler runs on this thread.
        """
        while not self.service.shutdown_requested.wait(0.2):
            if self.parent_pid != 1 and os.getppid() != self.parent_pid:
                return "orphaned"
        while not self.service.wait_for_streams(0.2):  # Shutdown without cancel_sessions
            pass
        return "shutdown"

    def stop(self) -> None:
        """Stop the server, giving calls in progress a short grace, and remove its socket."""
        self.server.stop(STOP_GRACE_SECONDS).wait()
        for endpoint in self.endpoints:
            if endpoint.unix_path is not None:
                remove_socket(endpoint.unix_path)


def start(connection: str, tls: tuple[bytes, bytes] | None, log: logging.Logger) -> SparkServer:
    """Bind what ``connection`` names and start serving.

    Raises EndpointError (a usage error) or OSError (the endpoint cannot be served).
    """
    endpoints = parse_connection(connection)
    for endpoint in endpoints:
        if tls is None and not endpoint.is_local:
            raise EndpointError(
                f"--connection {connection!r} is reachable from other machines: serving there "
                "needs --tls-cert and --tls-key (plaintext is for loopback and Unix sockets)"
            )
    service = SparkWorkerService(log)
    server = new_server(service.handler(), "quiver-spark")
    bound = [_bind(server, endpoint, tls, connection) for endpoint in endpoints]
    server.start()
    return SparkServer(server, service, bound)


def _bind(
    server: grpc.Server,
    endpoint: GrpcEndpoint,
    tls: tuple[bytes, bytes] | None,
    connection: str,
) -> GrpcEndpoint:
    """Add one listening endpoint; a Unix socket is created with mode 0600."""
    if endpoint.unix_path is not None and os.path.exists(endpoint.unix_path):
        raise OSError(f"cannot listen on {endpoint.unix_path}: the path exists (in use?)")
    old_umask = os.umask(_SOCKET_UMASK)
    try:
        if tls is None:
            port = server.add_insecure_port(endpoint.address)
        else:
            port = server.add_secure_port(endpoint.address, grpc.ssl_server_credentials([tls]))
    except RuntimeError as exc:  # grpcio reports a failed bind this way
        raise OSError(f"cannot listen on {connection}: {exc}") from None
    finally:
        os.umask(old_umask)
    if port == 0:
        raise OSError(f"cannot listen on {endpoint} (--connection {connection})")
    if endpoint.unix_path is not None:
        os.chmod(endpoint.unix_path, 0o600)  # also where the umask is not honoured
    return endpoint.with_port(port)


def serve(
    worker_id: str, connection: str, tls: tuple[bytes, bytes] | None, log: logging.Logger
) -> int:
    """Serve until Shutdown, SIGTERM or the engine's exit; return the exit status."""
    worker = start_or_exit_status(lambda: start(connection, tls, log), log)
    if isinstance(worker, int):
        return worker
    try:
        where = ", ".join(str(endpoint) for endpoint in worker.endpoints)
        sys.stderr.write(f"quiver-worker[{worker_id}] serving Spark's UdfWorker on {where}\n")
        if worker.wait() == "orphaned":
            log.info("the process that started the worker exited; stopping")
            worker.service.cancel_all("the engine is gone")
        else:
            log.info("Shutdown: exiting")
    except BaseException:  # SIGTERM: cancel the open streams, let them answer, then exit
        log.info("SIGTERM: cancelling %d open stream(s)", worker.service.open_streams())
        worker.service.cancel_all("the worker got SIGTERM")
        worker.service.wait_for_streams(SIGTERM_GRACE_SECONDS)
        raise
    finally:
        worker.stop()
    return EXIT_OK
