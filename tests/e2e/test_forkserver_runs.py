"""The fork server through `quiver run`: later runs fork their Python workers from it, an edited
UDF file is used, crashes, stuck workers and a killed engine are handled as with fork/exec
workers, and the server exits when idle."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pytest
from quiver_e2e import assert_failed, assert_ok, read_table, udf_file, write_table

UDFS = """
import os, signal, sys, time
import pyarrow as pa
import quiver

VERSION = "{version}"

@quiver.udf(returns="int64")
def parent(x: pa.Array) -> pa.Array:
    return pa.array([os.getppid()] * len(x), pa.int64())

@quiver.udf(returns="string")
def version(x: pa.Array) -> pa.Array:
    return pa.array([VERSION] * len(x))

@quiver.udf(returns="int64")
def crash(x: pa.Array) -> pa.Array:
    print("about to crash", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

@quiver.udf(returns="int64")
def hang(x: pa.Array) -> pa.Array:
    with open(os.environ["PID_FILE"] + ".tmp", "w") as out:
        out.write(str(os.getpid()))
    os.rename(os.environ["PID_FILE"] + ".tmp", os.environ["PID_FILE"])
    time.sleep(600)
"""


def cmdline(pid: int) -> str:
    """Return the command line of `pid` ('' once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Return whether `pid` runs (exists and is not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def parent_of(pid: int) -> int:
    """Return the parent pid of `pid`."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def servers_in(directory: Path) -> list[int]:
    """Return the pids of the fork servers whose socket is in `directory`."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and "quiver.forkserver" in (line := cmdline(int(entry.name)))
        and str(directory) in line
    ]


def wait_until(condition, timeout: float = 20, what: str = "condition") -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def fork_dir(quiver):
    """A fresh private fork-server directory for this test; its servers are stopped after."""
    directory = Path(tempfile.mkdtemp(prefix="qfs-"))
    quiver.env["QUIVER_FORKSERVER_DIR"] = str(directory)
    quiver.env.pop("QUIVER_NO_DAEMON", None)
    yield directory
    for pid in servers_in(directory):
        os.kill(pid, signal.SIGTERM)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def udfs(tmp_path):
    """Write the UDF file (version 'one') and return its path."""
    path = tmp_path / "fs_udfs.py"
    path.write_text(UDFS.format(version="one"))
    return path


@pytest.fixture
def source(tmp_path):
    return write_table(pa.table({"x": pa.array([1], pa.int64())}), tmp_path / "one.parquet")


def run_value(quiver, source, udfs, function, *extra, out_name="out.parquet"):
    """Run `function(x)` over the 1-row file and return the result's one value."""
    out = source.parent / out_name
    result = quiver("run", source, "--udf", f"v={udfs}:{function}(x)", "-o", out, "--force", *extra)
    assert_ok(result)
    return read_table(out).column("v")[0].as_py()


def warm(quiver, source, udfs, fork_dir) -> int:
    """Run once (which starts the server) and wait until the server listens; return its pid."""
    run_value(quiver, source, udfs, "version")
    wait_until(lambda: list(fork_dir.glob("*.sock")), 60, "the fork server's socket")
    (pid,) = servers_in(fork_dir)
    return pid


def test_second_run_forks_its_worker_from_the_server(quiver, source, udfs, fork_dir):
    server = warm(quiver, source, udfs, fork_dir)
    assert run_value(quiver, source, udfs, "parent") == server
    assert "quiver.forkserver" in cmdline(server)
    assert oct(fork_dir.stat().st_mode & 0o777) == "0o700"


def test_no_daemon_starts_the_worker_itself(quiver, source, udfs, fork_dir):
    server = warm(quiver, source, udfs, fork_dir)
    assert run_value(quiver, source, udfs, "parent", "--no-daemon") != server
    quiver.env["QUIVER_NO_DAEMON"] = "1"
    assert run_value(quiver, source, udfs, "parent") != server


def test_an_edited_udf_file_is_used(quiver, source, udfs, fork_dir):
    warm(quiver, source, udfs, fork_dir)
    assert run_value(quiver, source, udfs, "version") == "one"
    udfs.write_text(UDFS.format(version="two"))
    assert run_value(quiver, source, udfs, "version") == "two"


def test_grouped_map_workers_are_forked_from_the_server_too(quiver, source, udfs, fork_dir):
    server = warm(quiver, source, udfs, fork_dir)
    keyed = pa.table({"k": pa.array([1, 2, 1], pa.int64())})
    grouped_source = write_table(keyed, source.parent / "keyed.parquet")
    for extra, forked in (([], True), (["--no-daemon"], False)):
        out = source.parent / "grouped.parquet"
        result = quiver(
            "run", grouped_source, "--group-by", "k", "--apply",
            f"{udf_file('kinds')}:parent_pid", "-o", out, "--force", *extra,
        )  # fmt: skip
        assert_ok(result)
        parents = set(read_table(out).column("parent").to_pylist())
        assert (parents == {server}) == forked, (extra, parents, server)


def test_a_crashing_worker_is_reported_and_the_server_lives_on(quiver, source, udfs, fork_dir):
    server = warm(quiver, source, udfs, fork_dir)
    out = source.parent / "crash.parquet"
    result = quiver("run", source, "--udf", f"v={udfs}:crash(x)", "-o", out)
    assert_failed(result, out, "signal 9 (SIGKILL)", "about to crash")
    assert alive(server)
    assert run_value(quiver, source, udfs, "parent") == server


def test_a_stuck_worker_times_out_and_is_killed(quiver, source, udfs, fork_dir, tmp_path):
    server = warm(quiver, source, udfs, fork_dir)
    quiver.env["PID_FILE"] = str(tmp_path / "worker.pid")
    out = tmp_path / "stuck.parquet"
    result = quiver("run", source, "--udf", f"v={udfs}:hang(x)", "--batch-timeout", 1, "-o", out)
    assert_failed(result, out, "timeout")
    worker = int((tmp_path / "worker.pid").read_text())
    wait_until(lambda: not alive(worker), 10, "the stuck worker to die")
    assert alive(server)


def test_workers_die_with_a_killed_engine(quiver, source, udfs, fork_dir, tmp_path):
    server = warm(quiver, source, udfs, fork_dir)
    pid_file = tmp_path / "worker.pid"
    quiver.env["PID_FILE"] = str(pid_file)
    engine = quiver.popen("run", source, "--udf", f"v={udfs}:hang(x)", "-o", tmp_path / "k.parquet")
    wait_until(pid_file.exists, what="the worker to start")
    worker = int(pid_file.read_text())
    assert parent_of(worker) == server
    engine.kill()
    engine.communicate()
    wait_until(lambda: not alive(worker), 10, "the worker to die with its engine")
    assert alive(server)


def test_the_server_exits_when_idle(quiver, source, udfs, fork_dir):
    # Idle counts from when the server listens, which may be while the first run still works.
    quiver.env["QUIVER_FORKSERVER_IDLE_TIMEOUT"] = "10"
    run_value(quiver, source, udfs, "version")
    wait_until(lambda: servers_in(fork_dir), 30, "the fork server to start")
    (server,) = servers_in(fork_dir)
    wait_until(lambda: not alive(server), 60, "the idle server to exit")
    assert list(fork_dir.glob("*.sock")) == []


def test_a_directory_open_to_others_is_refused(quiver, source, udfs, fork_dir):
    fork_dir.chmod(0o755)
    result = quiver(
        "run", source, "--udf", f"v={udfs}:parent(x)", "-o", source.parent / "o.parquet"
    )
    assert_ok(result)
    assert "without the fork server" in result.stderr and "0700" in result.stderr, result.stderr
    assert servers_in(fork_dir) == []
    assert list(fork_dir.iterdir()) == []
