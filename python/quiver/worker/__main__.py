"""Run the quiver Python worker.

``python -m quiver.worker --id ID --connection unix:PATH`` connects to the engine (transport
``uds``, the default); ``python -m quiver.worker --transport grpc --id ID --connection
grpc+unix:PATH`` (or ``grpc+tcp:HOST:PORT``) serves the UdfWorker gRPC service there instead.

Exit status: 0 after Shutdown, SIGTERM/SIGINT or the engine closing the connection (over grpc: the
process that started the worker exiting); 1 when the connection breaks (inside a frame, or a frame
that does not decode) or, over grpc, when the endpoint cannot be bound; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

SECRET_ENV = "QUIVER_WORKER_SECRET"
EXIT_OK = 0
EXIT_CONNECTION_LOST = 1
EXIT_USAGE = 2


class TerminationRequested(BaseException):
    """Signal a stop request (SIGTERM/SIGINT); a BaseException so UDF code cannot swallow it."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line the engine starts the worker with."""
    parser = argparse.ArgumentParser(
        prog="python -m quiver.worker", description="Run UDFs for a quiver engine."
    )
    parser.add_argument("--id", required=True, help="worker id given by the engine")
    parser.add_argument(
        "--connection",
        required=True,
        help="uds: the engine's socket, unix:/path/to/socket; grpc: where to serve, "
        "grpc+unix:/path/to/socket or grpc+tcp:HOST:PORT (an empty HOST is 127.0.0.1)",
    )
    parser.add_argument(
        "--transport",
        default="uds",
        choices=["uds", "grpc"],
        help="uds: connect to the engine and speak frames (default); grpc: serve UdfWorker",
    )
    parser.add_argument("--tls-cert", help="grpc: PEM certificate chain to serve TLS with")
    parser.add_argument("--tls-key", help="grpc: PEM private key of --tls-cert")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much to log on stderr (default: info)",
    )
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_cert is not None and args.transport != "grpc":
        parser.error("--tls-cert and --tls-key are for --transport grpc")
    return args


def setup_process(worker_id: str, level: str) -> logging.Logger:
    """Route output to stderr, enable faulthandler, and return the worker's logger."""
    # The protocol owns the socket, not stdout; still, UDF prints and C-level writes belong in
    # the worker log, in order with the rest, so stdout becomes stderr at both levels.
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), 1)
    sys.stdout = sys.stderr
    faulthandler.enable()
    log = logging.getLogger("quiver.worker")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"quiver-worker[{worker_id}] %(levelname)s %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False
    return log


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM (or SIGINT) into an exception that unwinds to main()."""
    raise TerminationRequested


def run(args: argparse.Namespace, log: logging.Logger) -> int:
    """Serve executions over the chosen transport; return the exit status."""
    if args.transport == "grpc":
        return run_grpc(args, log)
    return run_uds(args, log)


def run_uds(args: argparse.Namespace, log: logging.Logger) -> int:
    """Connect, say Hello and serve executions; return the exit status."""
    # Imported here so that the usage errors above need neither pyarrow nor protobuf.
    from quiver.protocol.framing import FramingError
    from quiver.worker.connection import Connection, EndpointError
    from quiver.worker.server import WorkerServer

    secret = os.environ.pop(SECRET_ENV, None)  # UDFs and their children need not see it
    if secret is None:
        log.error("%s is not set; the engine passes the worker's secret in it", SECRET_ENV)
        return EXIT_USAGE
    try:
        conn = Connection.connect(args.connection)
    except EndpointError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except OSError as exc:
        log.error("cannot connect to %s: %s", args.connection, exc)
        return EXIT_CONNECTION_LOST
    try:
        log.info("connected to %s (pid %d)", args.connection, os.getpid())
        conn.send_hello(args.id, secret.encode())
        WorkerServer(conn, log).serve()
        return EXIT_OK
    except TerminationRequested:
        log.info("SIGTERM/SIGINT: exiting")
        return EXIT_OK
    except FramingError as exc:
        log.error("connection to the engine lost: %s", exc)
        return EXIT_CONNECTION_LOST
    except OSError as exc:
        log.error("connection to the engine lost: %s", exc)
        return EXIT_CONNECTION_LOST
    finally:
        conn.close()


def run_grpc(args: argparse.Namespace, log: logging.Logger) -> int:
    """Serve the UdfWorker gRPC service until Manage says Shutdown or SIGTERM; return the status."""
    try:
        from quiver.worker.connection import EndpointError
        from quiver.worker.grpc_server import GrpcWorker
    except ImportError as exc:
        log.error("the grpc transport needs the grpcio package (pip install grpcio): %s", exc)
        return EXIT_USAGE

    secret = os.environ.pop(SECRET_ENV, None)  # UDFs and their children need not see it
    if secret is None:
        log.error("%s is not set; the engine passes the worker's secret in it", SECRET_ENV)
        return EXIT_USAGE
    tls = None
    if args.tls_cert is not None:
        try:
            with open(args.tls_key, "rb") as key, open(args.tls_cert, "rb") as cert:
                tls = (key.read(), cert.read())
        except OSError as exc:
            log.error("cannot read the TLS key or certificate: %s", exc)
            return EXIT_USAGE
    try:
        worker = GrpcWorker.start(args.connection, args.id, secret.encode(), log, tls)
    except EndpointError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except OSError as exc:
        log.error("%s", exc)
        return EXIT_CONNECTION_LOST
    # Exactly this line, whatever the log level: people and scripts look for it.
    sys.stderr.write(f"quiver-worker[{args.id}] serving grpc on {worker.endpoint}\n")
    try:
        if worker.wait_for_shutdown() == "orphaned":
            log.info("the process that started the worker exited; stopping")
            worker.cancel_all("the engine is gone")
        else:
            log.info("Shutdown: exiting")
    except TerminationRequested:
        log.info("SIGTERM/SIGINT: stopping")
        worker.cancel_all("the worker got SIGTERM")
    finally:
        worker.stop()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the worker and exit with its status."""
    args = parse_args(argv)
    log = setup_process(args.id, args.log_level)
    # SIGINT too: Ctrl-C in the engine's terminal reaches the whole process group, and the
    # workers should then leave quietly rather than print a KeyboardInterrupt traceback.
    signal.signal(signal.SIGTERM, _on_stop_signal)
    signal.signal(signal.SIGINT, _on_stop_signal)
    try:
        status = run(args, log)
    except TerminationRequested:
        status = EXIT_OK
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # we are exiting already
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.shutdown()
    sys.stderr.flush()
    # Exit right away: a thread a UDF left running must not keep a finished worker alive.
    os._exit(status)


if __name__ == "__main__":
    main()
