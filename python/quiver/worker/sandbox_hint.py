"""Which sandbox rule a UDF broke, added to its error when the worker runs sandboxed.

``quiver run --sandbox`` and ``quiver.Session(sandbox=True)`` start the workers inside Landlock
and a seccomp filter, with ``QUIVER_SANDBOX`` set to a summary of the rules. A UDF that breaks
one gets a plain ``PermissionError`` from the kernel; this names the rule, so that the user
knows it was the sandbox and not the file's permissions.
"""

from __future__ import annotations

import errno
import os
import traceback

ENVIRONMENT_VARIABLE = "QUIVER_SANDBOX"
# Both errnos the sandbox answers with: EACCES (Landlock, refused sockets), EPERM (the filter).
_REFUSALS = (errno.EACCES, errno.EPERM)


def explain(exc: BaseException) -> str:
    """Return a line naming the sandbox rule ``exc`` (or an exception it chains) broke, or ""."""
    rules = os.environ.get(ENVIRONMENT_VARIABLE, "")
    if rules in ("", "0"):
        return ""
    refusal = _refusal(exc, set())
    if refusal is None:
        return ""
    return f"quiver sandbox: {_rule(refusal)} (the sandbox's rules: {rules})\n"


def _refusal(exc: BaseException | None, seen: set[int]) -> OSError | None:
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _REFUSALS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _rule(exc: OSError) -> str:
    if exc.filename is not None:
        path = os.path.abspath(os.fsdecode(exc.filename))
        return (
            f"the file system rule refused {path}: a sandboxed UDF reads only the system, its "
            "worker, its own files and the paths given with --sandbox-read, and writes only in "
            f"its private directory {os.environ.get('TMPDIR', '($TMPDIR)')}"
        )
    frames = traceback.extract_tb(exc.__traceback__)
    if any(os.path.basename(frame.filename) == "socket.py" for frame in frames):
        return "the network rule refused a socket: a sandboxed UDF has no network"
    return (
        "the syscall filter or the network rule refused a call: a sandboxed UDF may not open "
        "network sockets, ptrace, mount, unshare, use keyctl or bpf"
    )
