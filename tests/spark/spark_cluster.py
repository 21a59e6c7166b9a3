"""Helpers of the quiver.spark tests: the mark every process of the test cluster's executors
carries, and time limits by SIGALRM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

MARK = "QUIVER_SPARK_TEST_MARK"
START_SECONDS = 180
TEST_SECONDS = 120


class TimeLimit(Exception):
    """A test (or the cluster's start) ran past its time limit."""


def alarm(seconds: int, what: str) -> None:
    def expire(signum: int, frame: Any) -> None:
        raise TimeLimit(f"{what} took more than {seconds} s")

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)


def marked_processes(token: str) -> list[tuple[int, str]]:
    """The processes whose environment holds this cluster's mark: executors, their Python
    workers and those workers' quiver workers."""
    needle = f"{MARK}={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append((int(entry), cmdline))
    return found


def wheel_environment(root: Path, directory: Path) -> tuple[Path, Path]:
    """An environment whose quiver is the self-contained wheel (scripts/pack_wheel.py):
    a venv of its own with the wheel installed, seeing this environment's other packages
    (pyarrow, pandas, ...) through a path file but not its editable quiver (whose import
    hook is a .pth file of this environment's site-packages, which a path entry does not
    run). ``directory/env/bin/python`` is the executors' Python. Returns it and the wheel."""
    packed = subprocess.run(
        [sys.executable, str(root / "scripts" / "pack_wheel.py"), str(directory / "wheelhouse")],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    wheel = Path(packed.stdout.strip().splitlines()[-1])
    env = directory / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = Path(
        subprocess.run(
            [
                str(env / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        timeout=120,
    )
    import pyarrow

    # pyarrow beside quiver, as pip would install it: the engine's RUNPATH finds it there.
    (site / "pyarrow").symlink_to(Path(pyarrow.__file__).parent, target_is_directory=True)
    ours = sysconfig.get_path("purelib")
    (site / "quiver-test-dependencies.pth").write_text(ours + "\n")
    return env / "bin" / "python", wheel
