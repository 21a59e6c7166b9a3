"""The sandbox tier for a :class:`quiver.Session`'s workers (``Session(sandbox=True)``).

The engine sandboxes a worker between fork and exec (Landlock + seccomp, docs/security.md) when
its environment holds ``QUIVER_SANDBOX``; ``QUIVER_SANDBOX_READ`` lists the paths it may read
besides the system's, here the workers' import path.
"""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
from collections.abc import Sequence

from quiver.errors import InvalidInput

# The oldest Landlock ABI the engine accepts: 4 has the TCP port rules.
MINIMUM_LANDLOCK_ABI = 4
_LANDLOCK_CREATE_RULESET = 444  # the same number on x86-64 and aarch64
_CREATE_RULESET_VERSION = 1


def landlock_abi() -> int:
    """Return the kernel's Landlock ABI version, 0 when it has none."""
    if platform.system() != "Linux":
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    abi = libc.syscall(_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    return max(int(abi), 0)


def check_sandbox_supported() -> None:
    """Raise InvalidInput, saying why, on a machine that cannot sandbox workers."""
    abi = landlock_abi()
    if abi < MINIMUM_LANDLOCK_ABI:
        have = f"ABI {abi}" if abi else "no Landlock"
        raise InvalidInput(
            f"the sandbox needs Linux Landlock ABI {MINIMUM_LANDLOCK_ABI} (Linux >= 6.7, "
            f"landlock among the active security modules); this machine has {have}. The run "
            "is refused rather than run unsandboxed: drop sandbox=True (or --sandbox, or the "
            "UDF's @quiver.udf(sandbox=...)), or use a newer kernel"
        )


def sandbox_environment(python: str | None, readable: Sequence[str] = ()) -> dict[str, str]:
    """The workers' environment entries that ask the engine for the sandbox.

    The workers may read the system, their import path and ``readable`` (more files or
    folders: the ``"file.py:function"`` UDFs' folders, data).

    Refuses (InvalidInput) on a machine that cannot sandbox, rather than run unsandboxed.
    """
    check_sandbox_supported()
    paths = [*_import_path(python), *(os.path.abspath(p) for p in readable)]
    return {"QUIVER_SANDBOX": "1", "QUIVER_SANDBOX_READ": os.pathsep.join(paths)}


def _import_path(python: str | None) -> list[str]:
    """The folders the workers import from: this process's sys.path, or the other Python's."""
    if python is None:
        paths = [os.getcwd() if p == "" else p for p in sys.path]
    else:
        script = "import sys; print('\\n'.join(p for p in sys.path if p))"
        done = subprocess.run([python, "-c", script], capture_output=True, text=True, check=False)
        paths = done.stdout.splitlines()
    return [p for p in paths if os.path.exists(p)]


def running_sandboxed() -> bool:
    """Tell whether this process runs inside the sandbox the engine enters for a worker: the
    engine's rules' summary in ``QUIVER_SANDBOX`` (a run that only asked for one says ``1``),
    its private directory as ``TMPDIR``, and a seccomp filter under ``no_new_privs``."""
    rules = os.environ.get("QUIVER_SANDBOX", "")
    tmpdir = os.environ.get("TMPDIR", "")
    if rules in ("", "0", "1") or not tmpdir or tmpdir not in rules:
        return False
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
    except OSError:
        return False
    return fields.get("Seccomp", "").strip() == "2" and fields.get("NoNewPrivs", "").strip() == "1"


def unsandboxed_refusal(name: str) -> str:
    """The error of a worker that is asked to run UDF ``name``, declared
    ``@quiver.udf(sandbox=...)``, outside the sandbox."""
    return (
        f"UDF {name!r} is declared @quiver.udf(sandbox=...), but this worker is not sandboxed; "
        "it is refused rather than run unsandboxed. The engine sandboxes it when it reads "
        "sandbox= from the UDF's source before the run (a literal in the decorator of a "
        "'file.py:function' or 'module:function' UDF) or from the UDF object in quiver.Session; "
        "wrap it with the decorator in its file, or run with --sandbox"
    )
