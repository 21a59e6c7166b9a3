"""`quiver run --sandbox` and `quiver.Session(sandbox=True)`: workers inside Landlock + seccomp.

A sandboxed UDF has no network, cannot read the user's home (~/.ssh, here a fake HOME), cannot
write outside its private temporary directory; each refusal reaches the user naming the UDF and
the rule. A normal UDF still runs, writes to its $TMPDIR, and so do the compiled workers.
"""

from __future__ import annotations

import ctypes
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from quiver_e2e import assert_failed, people_table, write_table
from test_runtimes import RUST_WORKER, _built, cpp_worker  # noqa: F401 (a fixture)

import quiver


def _landlock_abi() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return max(int(libc.syscall(444, None, ctypes.c_size_t(0), 1)), 0)


pytestmark = pytest.mark.skipif(
    _landlock_abi() < 4, reason="the sandbox needs Landlock ABI 4 (Linux >= 6.7)"
)

UDFS = '''
import os
import socket
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.udf(returns="string")
def connect(name: pa.Array) -> pa.Array:
    with socket.create_connection(("127.0.0.1", 9), timeout=1):
        pass
    return name


@quiver.udf(returns="string")
def steal_key(name: pa.Array) -> pa.Array:
    key = Path(os.path.expanduser("~/.ssh/id_rsa")).read_text()
    return pa.array([key] * len(name))


@quiver.udf(returns="string")
def write_outside(name: pa.Array) -> pa.Array:
    (Path(__file__).resolve().parent.parent / "outside.txt").write_text("written")
    return name


@quiver.udf(returns="string")
def tmpdir(name: pa.Array) -> pa.Array:
    return pa.array([os.environ["TMPDIR"]] * len(name))


@quiver.udf(returns="string")
def upper_via_tmp(name: pa.Array) -> pa.Array:
    """A well-behaved UDF: writes its scratch file in $TMPDIR, reads it back."""
    with tempfile.NamedTemporaryFile("w+", suffix=".txt") as scratch:
        scratch.write("\\n".join(name.to_pylist()))
        scratch.flush()
        scratch.seek(0)
        lines = scratch.read().split("\\n")
    return pc.utf8_upper(pa.array(lines))
'''


@pytest.fixture
def sandbox_home(tmp_path: Path) -> Path:
    """A fake home with a private key, the file a stolen-credentials UDF would go for."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN FAKE KEY-----\n")
    return home


@pytest.fixture
def udfs(tmp_path: Path) -> Path:
    folder = tmp_path / "udfs"
    folder.mkdir()
    path = folder / "sandboxed.py"
    path.write_text(textwrap.dedent(UDFS))
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_table(people_table(200), tmp_path / "in.parquet")


@pytest.fixture
def sandboxed(quiver, sandbox_home):
    """The quiver runner with the fake HOME."""
    quiver.env["HOME"] = str(sandbox_home)
    return quiver


def _run(quiver, source: Path, udfs: Path, function: str, *extra: object):
    out = source.parent / f"{function}.parquet"
    spec = f"r={udfs}:{function}(name)"
    return out, quiver("run", source, "--sandbox", *extra, "--udf", spec, "-o", out)


@pytest.mark.parametrize("transport", ["uds", "shm", "grpc", "grpc+tcp"])
def test_a_normal_udf_runs_sandboxed_and_writes_in_its_tmpdir(sandboxed, source, udfs, transport):
    out, result = _run(sandboxed, source, udfs, "upper_via_tmp", "--transport", transport)
    assert result.returncode == 0, result.stderr
    names = people_table(200)["name"]
    assert pq.read_table(out)["r"].equals(pc.utf8_upper(names))


@pytest.mark.parametrize("transport", ["uds", "grpc+tcp"])  # no TCP; TCP but no connect
def test_a_socket_is_refused_naming_the_udf_and_the_network_rule(
    sandboxed, source, udfs, transport
):
    out, result = _run(sandboxed, source, udfs, "connect", "--transport", transport)
    text = assert_failed(result, out, "'r'", "PermissionError", "network rule")
    assert "quiver sandbox" in text


def test_reading_the_home_ssh_key_is_refused(sandboxed, source, udfs, sandbox_home):
    out, result = _run(sandboxed, source, udfs, "steal_key")
    key = sandbox_home / ".ssh" / "id_rsa"
    assert_failed(result, out, "'r'", "PermissionError", "file system rule", str(key))
    assert "FAKE KEY" not in result.stderr


def test_writing_outside_the_private_directory_is_refused(sandboxed, source, udfs, tmp_path):
    out, result = _run(sandboxed, source, udfs, "write_outside")
    assert_failed(result, out, "'r'", "PermissionError", "file system rule", "outside.txt")
    assert not (tmp_path / "outside.txt").exists()


def test_without_the_sandbox_the_same_udfs_succeed(sandboxed, source, udfs, tmp_path):
    """The refusals above are the sandbox's: the same run without it reads and writes."""
    out = source.parent / "plain.parquet"
    for function in ("steal_key", "write_outside"):
        result = sandboxed("run", source, "--udf", f"r={udfs}:{function}(name)", "-o", out)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "outside.txt").read_text() == "written"


def test_sandbox_read_grants_one_more_folder(sandboxed, source, udfs, sandbox_home):
    out, result = _run(
        sandboxed, source, udfs, "steal_key", "--sandbox-read", sandbox_home / ".ssh"
    )
    assert result.returncode == 0, result.stderr
    assert pq.read_table(out)["r"][0].as_py().startswith("-----BEGIN FAKE KEY")


def test_sandbox_read_without_sandbox_is_a_usage_error(quiver, source, tmp_path):
    out = tmp_path / "out.parquet"
    result = quiver("run", source, "--sandbox-read", tmp_path, "--udf", "x=cc:f(name)", "-o", out)
    assert result.returncode != 0
    assert "--sandbox-read is given without --sandbox" in result.stderr


@pytest.mark.parametrize("transport", ["uds", "grpc", "grpc+tcp"])
def test_compiled_workers_run_sandboxed(sandboxed, source, cpp_worker, transport):  # noqa: F811
    out = source.parent / "compiled.parquet"
    runtimes = ["--runtime", f"cc={cpp_worker}"]
    udfs = ["--udf", "up=cc:upper(name)"]
    if _built(RUST_WORKER):
        runtimes += ["--runtime", f"rs={RUST_WORKER}"]
        udfs += ["--udf", "rs_up=rs:upper(city)"]
    result = sandboxed(
        "run", source, "--sandbox", "--transport", transport, *runtimes, *udfs, "-o", out
    )
    assert result.returncode == 0, result.stderr
    table = pq.read_table(out)
    people = people_table(200)
    assert table["up"].equals(pc.utf8_upper(people["name"]))
    if _built(RUST_WORKER):
        assert table["rs_up"].equals(pc.utf8_upper(people["city"]))


def test_session_sandbox(sandbox_home, udfs):
    """Session(sandbox=[folder]): the folder of "file.py:function" UDFs is read, not HOME."""
    table = pa.table({"name": ["ada", "bob"]})
    environment = {"HOME": str(sandbox_home)}
    with quiver.Session(workers=1, sandbox=[udfs.parent], environment=environment) as s:
        out = s.map(table, udfs=[quiver.call(f"{udfs}:upper_via_tmp", "name")]).read_all()
        assert out["upper_via_tmp"].to_pylist() == ["ADA", "BOB"]
        with pytest.raises(quiver.UdfError, match="network rule"):
            s.map(table, udfs=[quiver.call(f"{udfs}:connect", "name")]).read_all()
        with pytest.raises(quiver.UdfError, match="file system rule"):
            s.map(table, udfs=[quiver.call(f"{udfs}:steal_key", "name")]).read_all()


def test_session_without_the_folder_cannot_read_the_udf_file(sandbox_home, udfs):
    table = pa.table({"name": ["ada"]})
    with quiver.Session(workers=1, sandbox=True, environment={"HOME": str(sandbox_home)}) as s:
        with pytest.raises(quiver.QuiverError, match="file system rule"):
            s.map(table, udfs=[quiver.call(f"{udfs}:upper_via_tmp", "name")]).read_all()


def test_the_private_directory_goes_with_the_run(sandboxed, private_tmp, source, udfs):
    out, result = _run(sandboxed, source, udfs, "tmpdir")
    assert result.returncode == 0, result.stderr
    (directory,) = set(pq.read_table(out)["r"].to_pylist())
    assert Path(directory).parent == private_tmp
    assert Path(directory).name.startswith("quiver-sandbox-")
    assert not Path(directory).exists()
