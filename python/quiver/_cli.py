"""The ``quiver`` console script: runs the ``quiver`` command shipped inside the package."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def binary() -> Path:
    """The path of the ``quiver`` command inside this package (quiver/_bin/quiver)."""
    return Path(__file__).resolve().parent / "_bin" / "quiver"


def main() -> None:
    """Replace this process with the ``quiver`` command, its workers run by this Python."""
    program = binary()
    if not os.access(program, os.X_OK):
        sys.exit(
            f"quiver: the quiver command is not built ({program} is missing); install the "
            "package with `pip install ./python`, or build it with `bash scripts/setup.sh`"
        )
    environment = dict(os.environ)
    environment.setdefault("QUIVER_PYTHON", sys.executable)
    os.execve(program, [str(program), *sys.argv[1:]], environment)
