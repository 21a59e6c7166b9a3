"""Fixtures of the end-to-end tests: the real `quiver` binary on real files.

The binary is $QUIVER_BINARY, else build/cpp/quiver/cli/quiver; without it the tests are
skipped (build it with `ninja -C build quiver`). Workers run with the Python running pytest,
which must have the quiver package installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from quiver_e2e import ROOT


def _binary() -> Path:
    return Path(
        os.environ.get("QUIVER_BINARY", ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver")
    )


# The runs' fork server lives in a directory of this session (not the user's), stopped at its end.
_FORK_SERVER_DIR = Path(tempfile.mkdtemp(prefix="qfs-"))


@pytest.fixture(scope="session", autouse=True)
def _stop_fork_servers():
    """Stop the fork servers the session's runs started, and remove their directory."""
    yield
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "quiver.forkserver" in cmdline and str(_FORK_SERVER_DIR) in cmdline:
            os.kill(int(entry.name), signal.SIGTERM)
    shutil.rmtree(_FORK_SERVER_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def quiver_binary() -> Path:
    """Return the quiver binary, or skip the test saying how to build it."""
    binary = _binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.skip(
            f"no quiver binary at {binary}: build it with `ninja -C build quiver` "
            "or point QUIVER_BINARY at one"
        )
    return binary


class Quiver:
    """Runs the binary with the test's Python as the workers' interpreter."""

    def __init__(self, binary: Path, cwd: Path) -> None:
        self.binary = binary
        self.cwd = cwd
        self.env = dict(
            os.environ, QUIVER_PYTHON=sys.executable, QUIVER_FORKSERVER_DIR=str(_FORK_SERVER_DIR)
        )

    def __call__(self, *args: object, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run `quiver ARGS...` to its end and return what it did."""
        return subprocess.run(
            [str(self.binary), *map(str, args)],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *args: object) -> subprocess.Popen:
        """Start `quiver ARGS...` without waiting for it."""
        return subprocess.Popen(
            [str(self.binary), *map(str, args)],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def quiver(quiver_binary: Path, tmp_path: Path) -> Quiver:
    """Return a runner of the quiver binary whose current directory is tmp_path."""
    return Quiver(quiver_binary, tmp_path)


@pytest.fixture
def private_tmp(quiver):
    """Point the engine's TMPDIR at a fresh short directory, to see its private directory there.

    Short because a Unix socket path (the private directory's worker sockets) holds at most 107
    bytes, and pytest's own temporary paths can be longer than that.
    """
    directory = Path(tempfile.mkdtemp(prefix="qv-"))
    quiver.env["TMPDIR"] = str(directory)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)
