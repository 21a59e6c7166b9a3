"""Run the quiver Python worker.

``python -m quiver.worker --id ID --connection ENDPOINT``: the endpoint's scheme picks the
transport (:mod:`quiver.transport`). ``unix:PATH`` connects to the engine and speaks frames
(``uds``); ``grpc+unix:PATH`` or ``grpc+tcp:HOST:PORT`` serves the UdfWorker gRPC service there
(``grpc``). ``--transport uds|grpc``, when given, must agree with the scheme.

``--dialect spark`` serves Apache Spark's ``UdfWorker`` protocol instead of quiver.v1
(:mod:`quiver.spark_dialect`, docs/spark-protocol.md): ``--connection`` is then a TCP port
(loopback) or a Unix socket path, and no secret is taken.

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
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from quiver.transport.base import WorkerConfig

SECRET_ENV = "QUIVER_WORKER_SECRET"
SECRET_FD_ENV = "QUIVER_WORKER_SECRET_FD"
# Also in quiver.transport.base, which this module imports only once the usage is known to be right.
EXIT_OK = 0
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
        "--dialect",
        choices=["quiver", "spark"],
        default="quiver",
        help="the protocol to speak: quiver (quiver.v1, the default) or spark (Apache Spark's "
        "UdfWorker service, docs/spark-protocol.md)",
    )
    parser.add_argument(
        "--connection",
        required=True,
        help="uds: the engine's socket, unix:/path/to/socket; grpc: where to serve, "
        "grpc+unix:/path/to/socket or grpc+tcp:HOST:PORT (an empty HOST is 127.0.0.1); "
        "--dialect spark: a TCP port (served on loopback) or a Unix socket path",
    )
    parser.add_argument(
        "--transport",
        choices=["uds", "grpc"],
        help="uds: connect to the engine and speak frames; grpc: serve UdfWorker (default: "
        "the one the --connection scheme names)",
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
    if args.dialect == "spark":
        if args.transport not in (None, "grpc"):
            parser.error("--dialect spark is served over grpc only")
    elif args.tls_cert is not None and _transport_name(args) != "grpc":
        parser.error("--tls-cert and --tls-key are for --transport grpc")
    return args


def _transport_name(args: argparse.Namespace) -> str | None:
    """Name the transport --transport asks for, else the one the endpoint's scheme names."""
    from quiver.transport import EndpointError, transport_name

    if args.transport is not None:
        return args.transport
    try:
        return transport_name(args.connection)
    except EndpointError:
        return None  # reported when the worker starts


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
    from quiver.worker.udf_logging import install_udf_logging

    install_udf_logging()  # a UDF's own logging keeps its levels in --log-dir files
    return log


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM (or SIGINT) into an exception that unwinds to main()."""
    raise TerminationRequested


def run(args: argparse.Namespace, log: logging.Logger) -> int:
    """Serve executions over the transport the endpoint names; return the exit status."""
    if args.dialect == "spark":
        return run_spark(args, log)
    # Imported here so that the usage errors above need neither pyarrow nor protobuf.
    from quiver.transport import EndpointError, accept_offer, transport_for, transport_name

    try:
        name = transport_name(args.connection)
    except EndpointError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    if args.transport is not None and args.transport != name:
        log.error(
            "--transport %s does not take the endpoint %r (a %s endpoint)",
            args.transport,
            args.connection,
            name,
        )
        return EXIT_USAGE
    offered = accept_offer(args.connection)
    if offered != args.connection:
        log.debug("taking the shared memory the engine offers: %s", offered)
        args.connection, name = offered, transport_name(offered)
    try:
        transport = transport_for(args.connection)
    except ImportError as exc:
        log.error("the %s transport needs a package that is missing (%s)", name, exc)
        return EXIT_USAGE
    config = _config(args, log)
    if config is None:
        return EXIT_USAGE
    from quiver.worker.instances import close_all
    from quiver.worker.state_machine import WorkerStateMachine

    try:
        return transport.serve(
            config, lambda sink, lookahead: WorkerStateMachine(sink, log, lookahead)
        )
    except TerminationRequested:
        log.info("SIGTERM/SIGINT: exiting")
        return EXIT_OK
    finally:
        close_all(log)  # class UDFs' close(): the worker stops here whatever ended it


def run_spark(args: argparse.Namespace, log: logging.Logger) -> int:
    """Serve Spark's UdfWorker service; return the exit status."""
    tls = _read_tls(args, log)
    if tls is False:
        return EXIT_USAGE
    try:
        from quiver.spark_dialect.server import serve
    except ImportError as exc:
        log.error("--dialect spark needs a package or generated code that is missing (%s)", exc)
        return EXIT_USAGE
    from quiver.worker.instances import close_all

    try:
        return serve(args.id, args.connection, tls, log)
    except TerminationRequested:
        log.info("SIGTERM/SIGINT: exiting")
        return EXIT_OK
    finally:
        close_all(log)  # class UDFs' close(): the worker stops here whatever ended it


def _read_tls(args: argparse.Namespace, log: logging.Logger) -> tuple[bytes, bytes] | None | bool:
    """Read --tls-key and --tls-cert: (key, cert), None when not given, False (logged) on error."""
    if args.tls_cert is None:
        return None
    try:
        with open(args.tls_key, "rb") as key, open(args.tls_cert, "rb") as cert:
            return key.read(), cert.read()
    except OSError as exc:
        log.error("cannot read the TLS key or certificate: %s", exc)
        return False


def _config(args: argparse.Namespace, log: logging.Logger) -> WorkerConfig | None:
    """Gather the worker's secret, identity and TLS files; None (logged) when one is missing."""
    from quiver.transport.base import WorkerConfig
    from quiver.worker.state_machine import worker_hello

    secret = _take_secret(log)
    if secret is None:
        return None
    tls = _read_tls(args, log)
    if tls is False:
        return None
    return WorkerConfig(args.connection, worker_hello(args.id), secret.encode(), log, tls)


def _take_secret(log: logging.Logger) -> str | None:
    """Read the secret from the pipe QUIVER_WORKER_SECRET_FD names (then close it), else
    from QUIVER_WORKER_SECRET; None (logged) when neither is usable or it is empty.
    Trailing whitespace (a newline from ``echo`` or a file) is not part of it."""
    fd_text = os.environ.pop(SECRET_FD_ENV, None)
    plain = os.environ.pop(SECRET_ENV, None)  # UDFs and their children need not see it
    if fd_text is not None:
        try:
            fd = int(fd_text)
            chunks = []
            while chunk := os.read(fd, 4096):
                chunks.append(chunk)
            os.close(fd)
            plain = b"".join(chunks).decode("ascii")
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            log.error("cannot read the secret from %s=%s: %s", SECRET_FD_ENV, fd_text, exc)
            return None
    if plain is None:
        log.error(
            "neither %s nor %s is set; the engine passes the worker's secret in one of them",
            SECRET_FD_ENV,
            SECRET_ENV,
        )
        return None
    secret = plain.rstrip(" \t\r\n")
    if not secret:
        log.error("the worker's secret (%s or %s) is empty", SECRET_FD_ENV, SECRET_ENV)
        return None
    return secret


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
