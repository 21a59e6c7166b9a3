"""The ``grpc`` transport: the worker serves the quiver.v1 ``UdfWorker`` service with grpcio.

The worker is the server (docs/protocol.md, section 5): it binds ``grpc+unix:PATH`` or
``grpc+tcp:HOST:PORT``, prints that it serves, and serves until ``Manage(shutdown)``, SIGTERM or
the exit of the process that started it. Each ``Execute`` call is one execution
(:mod:`.call`), the service checks every call's secret (:mod:`.service`), and :mod:`.server`
runs grpcio.
"""

from __future__ import annotations

import sys

from quiver.transport.base import EXIT_OK, ConversationFactory, WorkerConfig
from quiver.transport.grpc.endpoint import (
    GRPC_TCP_SCHEME,
    GRPC_UNIX_SCHEME,
    GrpcEndpoint,
    parse_grpc_endpoint,
)
from quiver.transport.grpc.server import GrpcWorker, start_or_exit_status


class GrpcTransport:
    """Serve ``UdfWorker`` on ``grpc+unix:PATH`` or ``grpc+tcp:HOST:PORT``."""

    name = "grpc"
    schemes = (GRPC_UNIX_SCHEME, GRPC_TCP_SCHEME)

    def serve(self, config: WorkerConfig, new_conversation: ConversationFactory) -> int:
        """Serve until Manage says Shutdown, SIGTERM, or the engine's exit; return the status."""
        log = config.log
        worker = start_or_exit_status(lambda: GrpcWorker.start(config, new_conversation), log)
        if isinstance(worker, int):
            return worker
        try:  # from here on, the server stops and its socket goes however the worker ends
            # Exactly this line, whatever the log level: people and scripts look for it.
            sys.stderr.write(
                f"quiver-worker[{config.hello.worker_id}] serving grpc on {worker.endpoint}\n"
            )
            if worker.wait_for_shutdown() == "orphaned":
                log.info("the process that started the worker exited; stopping")
                worker.cancel_all("the engine is gone")
            else:
                log.info("Shutdown: exiting")
        except BaseException:  # SIGTERM (the runtime's exception): stop what runs, let it through
            worker.cancel_all("the worker got SIGTERM")
            raise
        finally:
            worker.stop()
        return EXIT_OK


__all__ = ["GrpcEndpoint", "GrpcTransport", "GrpcWorker", "parse_grpc_endpoint"]
