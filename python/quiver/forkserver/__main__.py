"""Run the fork server: ``python -m quiver.forkserver --socket PATH [--idle-timeout SECONDS]
[--fixed-at-start NAME,...]``.

The engine starts it detached on demand (see docs/protocol.md, "Fork server"); it exits on its own
after ``--idle-timeout`` seconds without a request or a running worker.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from quiver.forkserver.server import DEFAULT_IDLE_TIMEOUT, serve


def main(argv: Sequence[str] | None = None) -> int:
    """Serve fork requests until idle; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m quiver.forkserver", description="Fork quiver Python workers on request."
    )
    parser.add_argument("--socket", required=True, help="Unix socket to listen on")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT,
        help=f"seconds without work before exiting (default {DEFAULT_IDLE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--fixed-at-start",
        default="",
        metavar="NAME,...",
        help="variables a request must have with the values this server was started with "
        "(the engine passes those it picks a server by); default: none",
    )
    args = parser.parse_args(argv)
    names = [name for name in args.fixed_at_start.split(",") if name]
    return serve(args.socket, args.idle_timeout, names)


if __name__ == "__main__":
    sys.exit(main())
