"""A kernel that cannot sandbox: the run is refused, saying why, and nothing runs unsandboxed.

No fake switch: the test starts `quiver run` (or a Python using quiver.Session) under a seccomp
filter of its own that answers Landlock's system calls as a kernel would that lacks them:
ENOSYS (Linux < 5.13), EOPNOTSUPP (Landlock built in but not among the active security
modules), or EPERM for landlock_restrict_self alone (a container's seccomp policy that lets a
ruleset be made but not entered); or, through a seccomp user notification that the test's
supervisor answers, Landlock ABI 3 (Linux 6.2 to 6.6: no TCP rules). The filter holds for the
engine and every process it starts. Each UDF leaves a file behind if it ever runs; none may.
"""

from __future__ import annotations

import errno
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from quiver_e2e import assert_failed, people_table, write_table

import quiver.sandbox as quiver_sandbox

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "aarch64"),
    reason="the filter names Landlock's syscall numbers of x86-64 and aarch64",
)

LANDLOCK_CREATE_RULESET, LANDLOCK_RESTRICT_SELF = 444, 446

# Installs a seccomp filter that fails syscalls FIRST..LAST with ERRNO, then execs the rest of
# argv: python -c WRAP ERRNO FIRST LAST PROGRAM ARG...
WRAP = textwrap.dedent(
    """
    import ctypes, os, sys

    code, first, last = (int(a) for a in sys.argv[1:4])

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8),
                    ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    LOAD_NR, JGE, JGT, RET = 0x20, 0x35, 0x25, 0x06
    ERRNO, ALLOW = 0x00050000, 0x7FFF0000
    rules = (Filter * 5)(
        Filter(LOAD_NR, 0, 0, 0),          # the syscall's number
        Filter(JGE, 0, 2, first),          # below FIRST: allow
        Filter(JGT, 1, 0, last),           # above LAST: allow
        Filter(RET, 0, 0, ERRNO | code),
        Filter(RET, 0, 0, ALLOW),
    )
    program = Program(5, rules)
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        sys.exit("no_new_privs: " + os.strerror(ctypes.get_errno()))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) != 0:
        sys.exit("seccomp: " + os.strerror(ctypes.get_errno()))
    os.execv(sys.argv[4], sys.argv[4:])
    """
)

# Installs a filter that hands landlock_create_ruleset to this process (SECCOMP_RET_USER_NOTIF),
# forks, execs the rest of argv in the child and answers the child's version queries with ABI
# and any other such call with ENOSYS, until the child exits: python -c NOTIFY ABI PROGRAM ARG...
NOTIFY = textwrap.dedent(
    """
    import ctypes, os, select, struct, sys

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8),
                    ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    abi = int(sys.argv[1])
    LOAD_NR, JEQ, RET = 0x20, 0x15, 0x06
    USER_NOTIF, ALLOW = 0x7FC00000, 0x7FFF0000
    rules = (Filter * 4)(
        Filter(LOAD_NR, 0, 0, 0),
        Filter(JEQ, 0, 1, 444),            # landlock_create_ruleset: asked to this process
        Filter(RET, 0, 0, USER_NOTIF),
        Filter(RET, 0, 0, ALLOW),
    )
    program = Program(4, rules)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:
        sys.exit("no_new_privs: " + os.strerror(ctypes.get_errno()))
    SECCOMP = {"x86_64": 317, "aarch64": 277}[os.uname().machine]
    listener = libc.syscall(SECCOMP, 1, 8, ctypes.byref(program))  # SET_MODE_FILTER, NEW_LISTENER
    if listener < 0:
        sys.exit("seccomp: " + os.strerror(ctypes.get_errno()))
    child = os.fork()
    if child == 0:
        os.close(listener)
        os.execv(sys.argv[2], sys.argv[2:])
    RECV, SEND = 0xC0502100, 0xC0182101
    while True:
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            sys.exit(os.waitstatus_to_exitcode(status))
        if not select.select([listener], [], [], 0.1)[0]:
            continue
        notice = ctypes.create_string_buffer(80)
        if libc.ioctl(listener, RECV, notice) != 0:
            continue
        ident = struct.unpack_from("=Q", notice.raw, 0)[0]
        flags = struct.unpack_from("=Q", notice.raw, 48)[0]  # args[2] of struct seccomp_data
        # The version query (LANDLOCK_CREATE_RULESET_VERSION) gets ABI; anything else fails.
        answer = struct.pack("=QqiI", ident, abi if flags == 1 else 0, 0 if flags == 1 else -38, 0)
        libc.ioctl(listener, SEND, ctypes.create_string_buffer(answer, 24))
    """
)

UDFS = """
from pathlib import Path

import pyarrow as pa

import quiver

RAN = Path(__file__).with_name("ran")


@quiver.udf(returns="string")
def plain(name: pa.Array) -> pa.Array:
    (RAN / "plain").touch()
    return name


@quiver.udf(returns="string", sandbox=True)
def declared(name: pa.Array) -> pa.Array:
    (RAN / "declared").touch()
    return name
"""

OLD_KERNEL = "needs Linux Landlock, which this kernel does not offer"
# (errno, first syscall, last syscall) and the words the refusal must hold.
KERNELS = {
    "no-landlock-syscalls": (errno.ENOSYS, LANDLOCK_CREATE_RULESET, LANDLOCK_RESTRICT_SELF),
    "landlock-not-enabled": (errno.EOPNOTSUPP, LANDLOCK_CREATE_RULESET, LANDLOCK_RESTRICT_SELF),
}


def _filtered(code: int, first: int, last: int, *command: object) -> list[str]:
    return [sys.executable, "-c", WRAP, str(code), str(first), str(last), *map(str, command)]


def _run(quiver, code: int, first: int, last: int, *args: object):
    return subprocess.run(
        _filtered(code, first, last, quiver.binary, *args),
        cwd=quiver.cwd,
        env=quiver.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def udfs(tmp_path: Path) -> Path:
    folder = tmp_path / "udfs"
    (folder / "ran").mkdir(parents=True)
    path = folder / "refused.py"
    path.write_text(textwrap.dedent(UDFS))
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_table(people_table(20), tmp_path / "in.parquet")


def _ran(udfs: Path) -> list[str]:
    return sorted(p.name for p in (udfs.parent / "ran").iterdir())


def test_the_filter_is_what_the_kernel_answers(quiver, tmp_path):
    """The premise: under the filter Landlock's first call fails with the chosen errno."""
    probe = "import ctypes; print(ctypes.CDLL(None, use_errno=True).syscall(444, None, 0, 1), " \
        "ctypes.get_errno())"  # fmt: skip
    for code, first, last in KERNELS.values():
        done = subprocess.run(
            _filtered(code, first, last, sys.executable, "-c", probe),
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.split() == ["-1", str(code)]


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_run_sandbox_is_refused_on_a_kernel_without_landlock(quiver, source, udfs, kernel):
    out = source.parent / "out.parquet"
    result = _run(
        quiver, *KERNELS[kernel], "run", source, "--sandbox",
        "--udf", f"p={udfs}:plain(name)", "-o", out,
    )  # fmt: skip
    assert_failed(result, out, OLD_KERNEL, "refused rather than run unsandboxed")
    assert _ran(udfs) == []


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_a_udf_declaring_a_sandbox_is_refused_on_a_kernel_without_landlock(
    quiver, source, udfs, kernel
):
    """No --sandbox: the declared UDF alone asks for one, and the whole run is refused."""
    out = source.parent / "out.parquet"
    result = _run(
        quiver, *KERNELS[kernel], "run", source,
        "--udf", f"p={udfs}:plain(name)", "--udf", f"d={udfs}:declared(name)", "-o", out,
    )  # fmt: skip
    assert_failed(result, out, OLD_KERNEL)
    assert _ran(udfs) == []


@pytest.mark.skipif(
    quiver_sandbox.landlock_abi() < quiver_sandbox.MINIMUM_LANDLOCK_ABI,
    reason="needs a kernel whose Landlock can make a ruleset (ABI 4)",
)
def test_a_kernel_that_refuses_to_enter_landlock_fails_the_worker_start(quiver, source, udfs):
    """landlock_restrict_self refused (a container's policy): the worker is never exec'd."""
    out = source.parent / "out.parquet"
    result = _run(
        quiver, errno.EPERM, LANDLOCK_RESTRICT_SELF, LANDLOCK_RESTRICT_SELF, "run", source,
        "--udf", f"d={udfs}:declared(name)", "-o", out,
    )  # fmt: skip
    assert_failed(result, out, "cannot enter the sandbox", "Operation not permitted")
    assert _ran(udfs) == []


@pytest.mark.parametrize("declared", [False, True])
def test_a_kernel_with_landlock_abi_3_refuses_the_run(quiver, source, udfs, declared):
    """Landlock without TCP rules: refused rather than sandboxed weaker."""
    out = source.parent / "out.parquet"
    udf = ["--udf", f"d={udfs}:declared(name)"] if declared else ["--sandbox"]
    command = [sys.executable, "-c", NOTIFY, "3", quiver.binary, "run", source, *udf, "-o", out]
    result = subprocess.run(
        [*map(str, command), "--udf", f"p={udfs}:plain(name)"],
        cwd=quiver.cwd,
        env=quiver.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    needles = ["this kernel has ABI 3", "refused rather than run with a weaker sandbox"]
    assert_failed(result, out, *needles, *(["'d' declares"] if declared else []))
    assert _ran(udfs) == []


SESSION = """
import sys
import pyarrow as pa
import quiver

table = pa.table({"name": ["ada"]})
try:
    with quiver.Session(workers=1) as s:
        # An unsandboxed UDF runs; the one that declares a sandbox is refused before it starts.
        print(s.map(table, udfs=[quiver.call(sys.argv[1] + ":plain", "name")]).read_all().num_rows)
        s.map(table, udfs=[quiver.call(sys.argv[1] + ":declared", "name")]).read_all()
except quiver.InvalidInput as error:
    print("refused:", error)
try:
    quiver.Session(workers=1, sandbox=True)
except quiver.InvalidInput as error:
    print("refused:", error)
"""


@pytest.mark.parametrize("kernel", [*KERNELS, "landlock-abi-3"])
def test_sessions_refuse_the_sandbox_on_a_kernel_without_landlock(quiver, udfs, kernel):
    if kernel == "landlock-abi-3":
        command = [sys.executable, "-c", NOTIFY, "3", sys.executable, "-c", SESSION, str(udfs)]
    else:
        command = _filtered(*KERNELS[kernel], sys.executable, "-c", SESSION, udfs)
    done = subprocess.run(
        command,
        env=quiver.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "1"
    refusals = [line for line in lines[1:] if line.startswith("refused:")]
    assert len(refusals) == 2, done.stdout
    have = "ABI 3" if kernel == "landlock-abi-3" else "no Landlock"
    for line in refusals:
        assert f"this machine has {have}" in line
        assert "refused rather than run unsandboxed" in line
    assert _ran(udfs) == ["plain"]
