"""Helpers of the quiver.spark tests: the mark every process of the test cluster's executors
carries, and time limits by SIGALRM."""

from __future__ import annotations

import os
import signal
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
        found.append((int(entry), cmdline[:200]))
    return found
