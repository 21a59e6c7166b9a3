"""quiver run's metrics: the summary table, --metrics FILE, the UDFs' own counters."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from quiver_e2e import ROOT, assert_ok, spec, write_table

ROWS = 10_000
BATCH_ROWS = 1_000


def numbers(tmp_path, rows: int = ROWS):
    table = pa.table({"x": pa.array(range(rows), type=pa.int64())})
    return write_table(table, tmp_path / "in.parquet", batch_rows=BATCH_ROWS)


def run_with_metrics(quiver, tmp_path, udf: str, *flags: object) -> tuple[dict, str]:
    result = quiver(
        "run", numbers(tmp_path), "--udf", spec("y", "metered", udf, "x"),
        "--batch-rows", BATCH_ROWS, "-o", "out.parquet", "--metrics", "metrics.json", *flags,
    )  # fmt: skip
    assert_ok(result)
    return json.loads((tmp_path / "metrics.json").read_text()), result.stderr


def test_rows_batches_and_bytes_match_the_input_and_output(quiver, tmp_path):
    metrics, _ = run_with_metrics(quiver, tmp_path, "sleepy", "--workers", 2)
    [group] = metrics["groups"]
    assert group["udfs"] == ["y"]
    assert group["rows_in"] == ROWS
    assert group["rows_out"] == pq.read_table(tmp_path / "out.parquet").num_rows == ROWS
    assert group["batches"] == ROWS // BATCH_ROWS
    # One int64 column each way, no nulls: 8 bytes a row (validity buffers at most add a bit).
    assert 8 * ROWS <= group["bytes_in"] <= 8 * ROWS + ROWS // 8 + 64 * group["batches"]
    assert 8 * ROWS <= group["bytes_out"] <= 8 * ROWS + ROWS // 8 + 64 * group["batches"]
    assert [w["rows_in"] for w in group["workers"]] == [ROWS // 2, ROWS // 2]
    assert sum(w["batches"] for w in group["workers"]) == group["batches"]
    assert all(w["peak_rss_bytes"] > 10 << 20 for w in group["workers"])
    assert metrics["elapsed_nanos"] > 0 and metrics["write_nanos"] > 0


def test_udf_time_is_the_time_the_udf_slept(quiver, tmp_path):
    metrics, _ = run_with_metrics(quiver, tmp_path, "sleepy")
    [group] = metrics["groups"]
    slept = 0.05 * group["batches"]
    assert slept <= group["udf_nanos"] / 1e9 < slept + 1.0
    # The engine waited for those answers, at least most of the time they took.
    assert group["wait_nanos"] / 1e9 >= slept * 0.5


def test_summary_shows_a_table_per_udf_and_per_worker_with_verbose(quiver, tmp_path):
    _, stderr = run_with_metrics(quiver, tmp_path, "sleepy", "--workers", 2)
    assert "rows in" in stderr and "udf" in stderr and "peak rss" in stderr
    assert "10,000" in stderr
    assert "pid" not in stderr.split("rows in", 1)[1]
    _, verbose = run_with_metrics(quiver, tmp_path, "sleepy", "--workers", 2, "-v")
    assert verbose.split("rows in", 1)[1].count("5,000") >= 2 * 2  # rows in and out per worker


def test_udf_counters_are_summed_over_workers_and_batches(quiver, tmp_path):
    metrics, stderr = run_with_metrics(quiver, tmp_path, "skip_multiples_of_three", "--workers", 3)
    [group] = metrics["groups"]
    skipped = len(range(0, ROWS, 3))
    assert group["counters"] == {"rows_skipped": skipped, "batches_seen": ROWS // BATCH_ROWS}
    assert sum(w["counters"]["rows_skipped"] for w in group["workers"]) == skipped
    assert len(group["workers"]) == 3
    assert f"counter  rows_skipped = {skipped:,} (y)" in stderr


def test_a_counter_name_that_is_no_metric_name_is_a_clear_error(quiver, tmp_path):
    result = quiver(
        "run", numbers(tmp_path, 10), "--udf", spec("y", "metered", "badly_named_counter", "x"),
        "-o", "out.parquet",
    )  # fmt: skip
    assert result.returncode == 1
    assert "'rows skipped' is not a valid metric name" in result.stderr


def test_a_metrics_path_that_cannot_be_written_fails_before_the_run(quiver, tmp_path):
    for path, says in [
        (tmp_path / "no" / "such" / "m.json", "does not exist"),
        (tmp_path, "is a directory"),
    ]:
        result = quiver(
            "run", numbers(tmp_path, 10), "--udf", spec("y", "metered", "sleepy", "x"),
            "-o", "out.parquet", "--metrics", path,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert says in result.stderr
        assert not (tmp_path / "out.parquet").exists()


def run_failing(quiver, tmp_path, *flags: object):
    return quiver(
        "run", numbers(tmp_path), "--udf", spec("y", "metered", "fails_on_one_row", "x"),
        "--batch-rows", BATCH_ROWS, "-o", "out.parquet", *flags,
    )  # fmt: skip


def test_traceback_locals_show_the_failing_row(quiver, tmp_path):
    result = run_failing(quiver, tmp_path, "--traceback-locals")
    assert result.returncode == 1
    assert "cannot take this value" in result.stderr
    assert "Locals of fails_on_one_row" in result.stderr
    assert "    value = 4242" in result.stderr
    assert "    row = 242" in result.stderr  # row 4242 is row 242 of its batch of 1,000
    # The whole batch's column is in a local too: its repr is cut.
    assert "characters)" in result.stderr
    assert len(result.stderr) < 20_000


def test_tracebacks_have_no_locals_unless_asked(quiver, tmp_path):
    result = run_failing(quiver, tmp_path)
    assert result.returncode == 1
    assert "cannot take this value" in result.stderr
    assert "Locals of" not in result.stderr


@pytest.mark.parametrize(
    ("udf", "says"),
    [
        ("forged_counter_name", "'rows skipped', which is not a metric name ([a-zA-Z_]"),
        ("forged_counter_value", "beyond what any execution can reach"),
    ],
)
def test_the_engine_refuses_forged_counters(quiver, tmp_path, udf, says):
    result = quiver(
        "run", numbers(tmp_path, 10),
        "--udf", spec("y", "metered", udf, "x"),
        "-o", "out.parquet", "--metrics", "metrics.json",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert says in result.stderr
    assert "while finishing in worker" in result.stderr
    assert not (tmp_path / "out.parquet").exists()
    assert not (tmp_path / "metrics.json").exists()


def test_udfs_of_two_runtimes_are_two_groups(quiver, tmp_path):
    cpp_worker = ROOT / "build" / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker"
    if not cpp_worker.is_file():
        pytest.skip(
            f"no C++ example worker at {cpp_worker}: ninja -C build quiver_example_udf_worker"
        )
    result = quiver(
        "run", numbers(tmp_path), "--runtime", f"cc={cpp_worker}",
        "--udf", "next=cc:add_one(x)", "--udf", spec("y", "metered", "sleepy", "x"),
        "--batch-rows", BATCH_ROWS, "-o", "out.parquet", "--metrics", "metrics.json",
    )  # fmt: skip
    assert_ok(result)
    groups = json.loads((tmp_path / "metrics.json").read_text())["groups"]
    assert sorted(group["udfs"] for group in groups) == [["next"], ["y"]]
    for group in groups:
        assert group["rows_in"] == group["rows_out"] == ROWS
        assert group["batches"] == ROWS // BATCH_ROWS
        assert group["counters"] == {}
