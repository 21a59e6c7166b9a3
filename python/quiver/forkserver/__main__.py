"""Run the fork server: ``python -m quiver.forkserver --socket PATH [--idle-timeout SECONDS]``.

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
    args = parser.parse_args(argv)
    return serve(args.socket, args.idle_timeout)


if __name__ == "__main__":
    sys.exit(main())
