"""quiver run's live view (--progress json, the progress line's rows/s) and the CPU per worker."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from quiver_e2e import assert_ok, spec, write_table

ROWS = 2_000
BATCH_ROWS = 100


def numbers(tmp_path, rows: int = ROWS):
    table = pa.table({"x": pa.array(range(rows), type=pa.int64())})
    return write_table(table, tmp_path / "in.parquet", batch_rows=BATCH_ROWS)


def progress_lines(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_progress_json_parses_and_its_final_rows_are_the_output_rows(quiver, tmp_path):
    result = quiver(
        "run", numbers(tmp_path), "--udf", spec("y", "progress_udfs", "sleepy_identity", "x"),
        "--batch-rows", BATCH_ROWS, "--workers", 2, "-o", "out.parquet", "--progress", "json",
    )  # fmt: skip
    assert_ok(result)
    lines = progress_lines(result.stderr)
    assert len(lines) >= 3, result.stderr  # 20 batches of 0.2 s on 2 workers: ~2 s
    *updates, final = lines
    assert final["final"] is True and not any(u["final"] for u in updates)
    assert final["rows"] == pq.read_table(tmp_path / "out.parquet").num_rows == ROWS
    assert final["total_rows"] == ROWS
    rows = [u["rows"] for u in lines]
    assert rows == sorted(rows)
    assert all(u["rows_per_second"] >= 0 and u["bytes"] >= 0 for u in lines)
    # While the run went on, its two workers were seen computing some batch, with their memory.
    seen = [w for u in updates for w in u["workers"]]
    assert {w["worker"] for w in seen} and len({w["pid"] for w in seen}) == 2
    computing = [w for w in seen if w["state"] == "computing"]
    assert computing, updates
    for worker in computing:
        assert worker["udfs"] == ["y"]
        assert 0 <= worker["batch"] < ROWS // BATCH_ROWS
        assert 0 <= worker["seconds"] < 60
        assert worker["rss_bytes"] > 10 << 20
    assert all(w["state"] == "idle" and w["batch"] is None for w in seen if w not in computing)


def test_progress_off_and_auto_off_a_terminal_write_no_progress(quiver, tmp_path):
    for mode in ("off", "auto"):
        result = quiver(
            "run", numbers(tmp_path, 200), "--udf", spec("y", "progress_udfs", "burn_cpu", "x"),
            "-o", "out.parquet", "--progress", mode,
        )  # fmt: skip
        assert_ok(result)
        assert not progress_lines(result.stderr) and "\r" not in result.stderr


def test_bad_progress_mode_is_a_usage_error(quiver, tmp_path):
    result = quiver(
        "run", numbers(tmp_path, 10), "--udf", spec("y", "progress_udfs", "burn_cpu", "x"),
        "-o", "out.parquet", "--progress", "fancy",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--progress" in result.stderr


def test_cpu_time_of_a_udf_that_burns_cpu_is_counted(quiver, tmp_path):
    result = quiver(
        "run", numbers(tmp_path, 10), "--udf", spec("y", "progress_udfs", "burn_cpu", "x"),
        "-o", "out.parquet", "--metrics", "metrics.json", "-v",
    )  # fmt: skip
    assert_ok(result)
    [group] = json.loads((tmp_path / "metrics.json").read_text())["groups"]
    assert group["batches"] == 1
    assert 0.2 <= group["cpu_nanos"] / 1e9 < 30
    [worker] = group["workers"]
    assert worker["cpu_nanos"] == group["cpu_nanos"]
    assert " cpu " in result.stderr  # the summary's table has the column
