"""Turn a freshly forked copy of the fork server into a worker.

Runs in the child only, between ``os.fork()`` and the worker's ``main``. The worker must not be
able to tell it was forked: it gets the engine's environment (and the run's time zone), current
directory, descriptors (stdin /dev/null, stdout and stderr the engine's log pipe, the secret pipe
as descriptor 3) and default signal handling, in its own process group, and dies with the server
(PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quiver.forkserver.request import Request

_PR_SET_PDEATHSIG = 1
# Descriptor numbers in the worker, as the engine's own fork/exec gives them.
_OUTPUT_FDS = (1, 2)
_SECRET_FD = 3
# Received descriptors are first moved above every target number.
_SCRATCH_FD = 10

_libc: ctypes.CDLL | None = None
_start_path0: str | None = None


def prepare() -> None:
    """Record, in the server before any fork, what the children need from its start."""
    global _libc, _start_path0
    _libc = ctypes.CDLL(None, use_errno=True)
    # ``python -m`` puts the current directory first on sys.path; a worker's is the engine's.
    _start_path0 = sys.path[0] if sys.path else None


def become_worker(request: Request, server_pid: int) -> None:
    """Set the process up as the engine's worker and run it; never returns normally."""
    os.setpgid(0, 0)
    if _libc is not None and _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(127)
    if os.getppid() != server_pid:
        os._exit(127)  # the server died before prctl
    for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
    _install_descriptors(request.fds)
    os.chdir(request.cwd)
    os.environb.clear()
    for entry in request.env:
        key, _, value = entry.partition(b"=")
        os.environb[key] = value
    time.tzset()  # the run's TZ, not the server's: what a fresh process would read at start
    cwd = os.fsdecode(request.cwd)
    if sys.path and sys.path[0] == _start_path0:
        sys.path[0] = cwd
    _reseed_random()
    from quiver.worker.__main__ import main

    sys.argv = ["python -m quiver.worker", *request.argv]
    main(request.argv)


def _install_descriptors(fds: list[int]) -> None:
    """Make fds[0] stdout and stderr, fds[1] (if any) descriptor 3, /dev/null stdin; close
    every other descriptor the server had (its listener, other engines' connections)."""
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, _SCRATCH_FD) for fd in fds]
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for target in _OUTPUT_FDS:
        os.dup2(moved[0], target)
    last = _OUTPUT_FDS[-1]
    if len(moved) > 1:
        os.dup2(moved[1], _SECRET_FD)
        last = _SECRET_FD
    os.closerange(last + 1, os.sysconf("SC_OPEN_MAX"))


def _reseed_random() -> None:
    """Give the worker its own random state: forked copies would all share the server's.

    The ``random`` module reseeds itself after a fork; numpy's legacy global generator does not.
    """
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()
