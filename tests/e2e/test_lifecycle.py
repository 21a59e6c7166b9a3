"""Worker lifecycle of `quiver run`: workers stop together and promptly, die with the engine,
inherit nothing of it, never expose their secret, and interrupted runs leave nothing behind."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from quiver_e2e import assert_failed, leftovers, people_table, spec, write_table

TRANSPORTS = ["uds", "grpc", "shm"]


@pytest.fixture(autouse=True)
def _workers_are_the_engines_children(quiver):
    """These tests look at the engine's own children: workers are fork/exec'd, not forked by the
    fork server (whose lifecycle tests are in test_forkserver_runs.py)."""
    quiver.env["QUIVER_NO_DAEMON"] = "1"


def children_of(pid: int) -> list[int]:
    """Return the pids of the live (not zombie) processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, parent = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(parent) == pid and state != "Z":
            found.append(int(entry.name))
    return found


def summary_seconds(stderr: str) -> float:
    """The duration of quiver's closing summary ("done in 850 ms" or "done in 1.25 s")."""
    found = re.search(r"done in ([0-9.]+) (ms|s)\b", stderr)
    assert found, f"no 'done in' summary in:\n{stderr}"
    return float(found.group(1)) / (1000 if found.group(2) == "ms" else 1)


def alive(pid: int) -> bool:
    """Return whether `pid` runs (exists and is not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_for_workers(process, count: int, timeout: float = 30) -> list[int]:
    """Wait until the engine `process` has `count` worker children and return their pids."""
    deadline = time.monotonic() + timeout
    while len(workers := children_of(process.pid)) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"only {workers} started"
        time.sleep(0.05)
    return workers


def test_hung_workers_time_out_together(quiver, tmp_path, private_tmp):
    # Each of the 3 workers hangs on its second batch: all are given up within one timeout
    # (plus the workers' start), where one after another they took 3 timeouts and more.
    source = write_table(people_table(1000), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    start = time.monotonic()
    result = quiver(
        "run", source, "--udf", spec("bad", "faulty", "hang", "id"), "--batch-rows", 100,
        "--workers", 3, "--batch-timeout", 5, "-o", out,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert_failed(result, out, "per-batch timeout")
    assert elapsed < 12, f"{elapsed:.1f} s for 3 hung workers with a 5 s batch timeout"
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_workers_stop_as_soon_as_the_work_is_done(quiver, tmp_path, private_tmp, transport):
    source = write_table(people_table(300), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    start = time.monotonic()
    result = quiver(
        "run", source, "--udf", spec("s", "lifecycle", "slow", "id"), "--batch-rows", 100,
        "--workers", 3, "--transport", transport, "-o", out,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    done = summary_seconds(result.stderr)
    # The summary is printed when the work ends; stopping the workers follows it.
    assert elapsed - done < 1.0, f"exit {elapsed - done:.2f} s after 'done in {done} s'"
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_leaves_nothing_behind(
    quiver, tmp_path, private_tmp, transport, signal_number
):
    source = write_table(people_table(1000), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    process = quiver.popen(
        "run", source, "--udf", spec("bad", "faulty", "hang", "id"), "--batch-rows", 100,
        "--workers", 2, "--transport", transport, "-o", out,
    )  # fmt: skip
    try:
        workers = wait_for_workers(process, 2)
        deadline = time.monotonic() + 30
        while not leftovers(tmp_path):  # batches flow, and then the UDFs hang
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no temporary output appeared"
            time.sleep(0.05)
        time.sleep(0.3)
        process.send_signal(signal_number)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signal_number, stderr
    assert not out.exists()
    assert leftovers(tmp_path) == []
    assert list(private_tmp.iterdir()) == [], "the private directory (or a socket) stayed"
    deadline = time.monotonic() + 2  # killed workers may take a moment to be reaped
    while (running := [pid for pid in workers if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running == [], f"workers {running} outlived the interrupted engine"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_workers_die_with_a_killed_engine(quiver, tmp_path, private_tmp, transport):
    source = write_table(people_table(2000), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    process = quiver.popen(
        "run", source, "--udf", spec("s", "faulty", "slow", "id"), "--batch-rows", 10,
        "--workers", 3, "--transport", transport, "-o", out,
    )  # fmt: skip
    try:
        workers = wait_for_workers(process, 3)
        time.sleep(0.5)
        process.kill()
        process.communicate()
        deadline = time.monotonic() + 2
        while (running := [pid for pid in workers if alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for pid in children_of(process.pid):
            os.kill(pid, signal.SIGKILL)
    assert running == [], f"workers {running} outlived the engine by 2 s"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_workers_inherit_no_descriptor_of_the_engine(quiver, tmp_path, transport):
    source = write_table(people_table(100), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--udf", spec("fds", "lifecycle", "open_fds", "id"), "--batch-rows", 50,
        "--transport", transport, "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    listing = pq.read_table(out).column("fds")[0].as_py()
    entries = dict(entry.split(" -> ", 1) for entry in listing.split("; "))
    assert str(source) not in entries.values(), listing
    assert entries["0"] == "/dev/null", listing
    assert entries["1"] == entries["2"] and entries["1"].startswith("pipe:"), listing
    # Nothing else the engine holds: no file of it, no pipe but the log.
    others = {fd: target for fd, target in entries.items() if int(fd) > 2}
    if transport == "shm":  # the two arenas the engine handed over (mmap keeps a descriptor)
        arenas = {fd for fd, target in others.items() if target.startswith("/memfd:quiver-shm-")}
        assert len(arenas) == 2, listing
        others = {fd: target for fd, target in others.items() if fd not in arenas}
    assert not [t for t in others.values() if t.startswith("/") and "/dev/" not in t], listing
    assert not [t for t in others.values() if t == entries["1"]], listing
    if transport in ("uds", "shm"):  # the Python worker holds its socket and nothing more
        assert len(others) == 1 and next(iter(others.values())).startswith("socket:"), listing


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_udf_code_cannot_read_the_worker_secret(quiver, tmp_path, transport):
    source = write_table(people_table(10), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--udf", spec("seen", "lifecycle", "visible_secrets", "id"),
        "--transport", transport, "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    seen = pq.read_table(out).column("seen")[0].as_py()
    assert "QUIVER_WORKER_SECRET=" not in seen, seen
    assert not re.search(r"[0-9a-f]{64}", seen), seen
