"""Run the quiver Python worker: ``python -m quiver.worker --id ID --connection unix:PATH``.

Exit status: 0 after Shutdown, SIGTERM/SIGINT or the engine closing the connection; 1 when the
connection breaks (inside a frame, or a frame that does not decode); 2 on a usage error.
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
        "--connection", required=True, help="engine endpoint, e.g. unix:/path/to/socket"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much to log on stderr (default: info)",
    )
    return parser.parse_args(argv)


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
