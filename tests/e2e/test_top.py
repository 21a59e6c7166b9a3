"""quiver top: the live view of a run going on in another process, read from the status the
run publishes in its private directory."""

from __future__ import annotations

import json
import stat
import time

import pyarrow as pa
from quiver_e2e import spec, udf_file, write_table

ROWS = 40
BATCH_ROWS = 5  # 8 batches of 0.2 s each over 2 workers: the run lasts about a second


def slow_run(quiver, tmp_path, rows: int = ROWS):
    table = pa.table({"x": pa.array(range(rows), type=pa.int64())})
    source = write_table(table, tmp_path / "in.parquet", batch_rows=BATCH_ROWS)
    return quiver.popen(
        "run", source, "--udf", spec("y", "progress_udfs", "sleepy_identity", "x"),
        "--batch-rows", BATCH_ROWS, "--workers", 2, "--max-in-flight", 1,
        "-o", "out.parquet", "-q",
    )  # fmt: skip


def look(quiver, *args: object, until, timeout: float = 30):
    """Run `quiver top ARGS` until `until(result)` holds; return that result."""
    deadline = time.monotonic() + timeout
    while True:
        result = quiver("top", *args)
        if until(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def computing(result) -> bool:
    if result.returncode != 0:
        return False
    runs = json.loads(result.stdout)
    return any(w["state"] == "computing" for run in runs for w in run["workers"])


def test_top_once_json_shows_the_workers_of_a_run_going_on(quiver, tmp_path, private_tmp):
    run = slow_run(quiver, tmp_path)
    try:
        result = look(quiver, "--once", "--json", until=computing)
        assert computing(result), result.stdout + result.stderr
        [status] = json.loads(result.stdout)
        assert status["pid"] == run.pid
        assert status["udfs"] == ["y"]
        assert status["input"].endswith("in.parquet")
        assert status["total_rows"] == ROWS and status["final"] is False
        workers = status["workers"]
        assert sorted(w["worker"].split(" (")[0] for w in workers) == ["worker 1", "worker 2"]
        busy = [w for w in workers if w["state"] == "computing"]
        assert all(w["batch"] >= 0 and w["in_flight"] == 1 for w in busy)
        assert all(w["rss_bytes"] > 0 for w in workers)
        slowest = status["slowest"]
        assert slowest["udfs"] == ["y"] and slowest["worker"] in [w["worker"] for w in busy]
        assert slowest["seconds"] == max(w["seconds"] for w in busy)
        # The status is this user's only: its directory 0700, its files 0600.
        [directory] = [d for d in private_tmp.iterdir() if (d / "status.json").exists()]
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_IMODE((directory / "status.json").stat().st_mode) == 0o600
    finally:
        assert run.wait(timeout=60) == 0, run.stderr.read()


def test_top_draws_the_view_and_follows_the_run_to_its_end(quiver, tmp_path, private_tmp):
    run = slow_run(quiver, tmp_path, rows=ROWS * 2)
    try:
        once = look(quiver, "--once", until=lambda r: "computing batch" in r.stdout)
        assert once.returncode == 0, once.stderr
        assert f"run {run.pid}" in once.stdout
        assert "rows/s" in once.stdout and "slowest: y (worker" in once.stdout
        assert "rss " in once.stdout
        follow = quiver("top", str(run.pid), "--interval", 0.2, "--json", timeout=60)
        assert follow.returncode == 0, follow.stderr
        views = [json.loads(line) for line in follow.stdout.splitlines()]
        assert len(views) >= 2  # it refreshed while the run went on
        rows = [view[0]["rows"] for view in views]
        assert rows == sorted(rows)  # progress only grows
    finally:
        assert run.wait(timeout=60) == 0, run.stderr.read()


def test_top_with_no_run_going_on_says_so(quiver, tmp_path, private_tmp):
    result = quiver("top", "--once")
    assert result.returncode == 1
    assert "no run of yours is going on" in result.stderr
    assert str(private_tmp) in result.stderr
    assert quiver("top", "999999", "--once").returncode == 1


def test_top_shows_a_grouped_run_too(quiver, tmp_path, private_tmp):
    table = pa.table({"k": [i % 8 for i in range(ROWS)], "x": list(range(ROWS))})
    source = write_table(table, tmp_path / "in.parquet")
    run = quiver.popen(
        "run", source, "--group-by", "k",
        "--apply", f"{udf_file('progress_udfs')}:sleepy_group", "--batch-rows", 10,
        "--workers", 2, "-o", "out.parquet", "-q",
    )  # fmt: skip
    try:
        result = look(quiver, "--once", "--json", until=computing)
        assert computing(result), result.stdout + result.stderr
        [status] = json.loads(result.stdout)
        assert status["pid"] == run.pid and status["udfs"] == ["sleepy_group"]
        assert len(status["workers"]) == 2
    finally:
        assert run.wait(timeout=60) == 0, run.stderr.read()
