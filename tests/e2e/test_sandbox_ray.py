"""`quiver run --ray` with the sandbox: --sandbox reaches every actor's workers, and a UDF that
declares @quiver.udf(sandbox=...) is sandboxed on Ray as it is locally; both still compute.

Each run starts a one-node Ray of its own (`--ray local`), so these are slow: two runs.
"""

from __future__ import annotations

import ctypes
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from quiver_e2e import assert_ok, people_table, write_table


def _landlock_abi() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return max(int(libc.syscall(444, None, ctypes.c_size_t(0), 1)), 0)


pytestmark = [
    pytest.mark.skipif(_landlock_abi() < 4, reason="the sandbox needs Landlock ABI 4"),
    pytest.mark.filterwarnings("ignore"),
]

UDFS = """
import os
import socket

import pyarrow as pa

import quiver


def _probe() -> str:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
        reach = "socket"
    except PermissionError:
        reach = "no socket"
    box = os.path.basename(os.environ.get("TMPDIR", "")).startswith("quiver-sandbox-")
    return f"{reach},{'sandboxed' if box else 'unsandboxed'}"


@quiver.udf(returns="string")
def plain(name: pa.Array) -> pa.Array:
    return pa.array([_probe()] * len(name))


@quiver.udf(returns="string", sandbox=True)
def boxed(name: pa.Array) -> pa.Array:
    return pa.array([_probe()] * len(name))
"""


@pytest.fixture
def job(tmp_path: Path) -> Path:
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'quiver[ray]'")
    (tmp_path / "in").mkdir()
    for part in range(2):
        write_table(people_table(30), tmp_path / "in" / f"part-{part}.parquet")
    (tmp_path / "code").mkdir()  # beside the test's home, not above it (the sandbox reads it)
    (tmp_path / "code" / "udfs.py").write_text(textwrap.dedent(UDFS))
    return tmp_path


def _outputs(out: Path) -> list:
    return [pq.read_table(p) for p in sorted(out.iterdir())]


@pytest.mark.parametrize("sandbox", ["--sandbox", "declared"])
def test_ray_runs_sandboxed_and_still_computes(quiver, job, sandbox):
    # A home of its own: a local Ray writes ~/.ray/auth_token, which other Ray clusters of the
    # user would then be asked for.
    (job / "home").mkdir()
    quiver.env["HOME"] = str(job / "home")
    out = job / "out"
    udfs = job / "code" / "udfs.py"
    extra = ["--sandbox"] if sandbox == "--sandbox" else []
    result = quiver(
        "run", job / "in", *extra, "--udf", f"p={udfs}:plain(name)",
        "--udf", f"b={udfs}:boxed(name)", "-o", out, "--ray", "local", "--ray-actors", "1",
        timeout=300,
    )  # fmt: skip
    assert_ok(result)
    tables = _outputs(out)
    assert len(tables) == 2 and all(t.num_rows == 30 for t in tables)
    plain = {v for t in tables for v in t["p"].to_pylist()}
    boxed = {v for t in tables for v in t["b"].to_pylist()}
    assert boxed == {"no socket,sandboxed"}
    assert plain == ({"no socket,sandboxed"} if extra else {"socket,unsandboxed"})
