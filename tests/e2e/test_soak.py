"""Soak: many consecutive `quiver run` invocations leave no process, socket, temporary
directory or file behind. QUIVER_SOAK_RUNS sets the count (CI: 20; a local soak: 300)."""

from __future__ import annotations

import os
from pathlib import Path

from quiver_e2e import leftovers, people_table, spec, write_table

RUNS = int(os.environ.get("QUIVER_SOAK_RUNS", "20"))
TRANSPORTS = ["uds", "grpc", "grpc+tcp"]


def processes_mentioning(text: str) -> list[str]:
    """Return the command lines of live processes that mention `text` (the workers name
    their private directory in --connection)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in command:
            found.append(f"{entry.name}: {command}")
    return found


def test_consecutive_runs_leave_nothing_behind(quiver, tmp_path, private_tmp):
    source = write_table(people_table(400), tmp_path / "in.parquet")
    fds_before = len(os.listdir("/proc/self/fd"))
    outcomes = {0: 0, 1: 0}
    for run in range(RUNS):
        transport = TRANSPORTS[run % len(TRANSPORTS)]
        failing = run % 4 == 3  # every 4th run fails in its UDF on the second batch
        udf = (
            spec("x", "faulty", "explode", "id")
            if failing
            else spec("x", "untrusted", "echo", "name")
        )
        out = tmp_path / f"out-{run % 2}.parquet"
        out.unlink(missing_ok=True)
        result = quiver(
            "run", source, "--udf", udf, "--batch-rows", 100,
            "--workers", 1 + run % 2, "--transport", transport, "-o", out, "-q",
        )  # fmt: skip
        assert result.returncode == (1 if failing else 0), f"run {run}: {result.stderr}"
        outcomes[result.returncode] += 1
        assert out.exists() != failing, f"run {run}"
        assert leftovers(tmp_path) == [], f"run {run}: {leftovers(tmp_path)}"
        assert list(private_tmp.iterdir()) == [], f"run {run} left {list(private_tmp.iterdir())}"
    assert processes_mentioning(str(private_tmp)) == []
    # The input and the outputs of the last successful runs, nothing else.
    names = {p.name for p in tmp_path.iterdir()}
    assert names <= {"in.parquet", "out-0.parquet", "out-1.parquet"}, names
    assert len(os.listdir("/proc/self/fd")) == fds_before
    print(f"{RUNS} runs: {outcomes[0]} succeeded, {outcomes[1]} failed as planned, nothing left")
