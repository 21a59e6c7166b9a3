"""quiver run --log-dir and quiver logs: every line a worker writes, kept and searchable."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from quiver_e2e import assert_ok, spec, write_table

ROWS = 100
BATCH_ROWS = 25
BATCHES = ROWS // BATCH_ROWS


def numbers(tmp_path):
    table = pa.table({"x": pa.array(range(ROWS), type=pa.int64())})
    return write_table(table, tmp_path / "in.parquet", batch_rows=BATCH_ROWS)


def run_logged(quiver, tmp_path, *flags: object):
    # One batch in flight per worker: its next batch is sent only after its answer came, so
    # every line is filed under its own batch (with more in flight, a line written as a batch
    # starts may be filed under the one before).
    result = quiver(
        "run", numbers(tmp_path), "--udf", spec("y", "logging_udfs", "loggy", "x"),
        "--batch-rows", BATCH_ROWS, "-o", "out.parquet", "--log-dir", "logs",
        "--max-in-flight", 1, *flags,
    )  # fmt: skip
    assert_ok(result)
    return tmp_path / "logs"


def kept_lines(directory) -> list[dict]:
    files = sorted(directory.glob("*.jsonl"))
    assert files, f"no log files in {directory}"
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


@pytest.mark.parametrize("workers", [1, 2])
def test_log_file_holds_every_way_a_udf_writes_with_its_batch_and_level(quiver, tmp_path, workers):
    directory = run_logged(quiver, tmp_path, "--workers", workers)
    assert len(list(directory.glob("worker-*.jsonl"))) == workers
    lines = kept_lines(directory)
    for batch in range(BATCHES):
        first = batch * BATCH_ROWS
        mine = {
            (line["level"], line["message"])
            for line in lines
            if line["batch"] == batch and line["message"].endswith(f"first={first}")
        }
        assert mine == {
            ("output", f"print stdout first={first}"),
            ("output", f"print stderr first={first}"),
            ("info", f"info first={first}"),
            ("warning", f"warning first={first}"),
            ("error", f"error first={first}"),
            ("output", f"raw fd1 first={first}"),
            ("output", f"raw fd2 first={first}"),
        }
    udf_lines = [line for line in lines if "first=" in line["message"]]
    assert len(udf_lines) == 7 * BATCHES  # nothing twice; DEBUG is below the kept level
    for line in udf_lines:
        assert line["udfs"] == ["y"]
        assert line["time"].endswith("Z") and line["pid"] > 0
        assert line["logger"] == ("loggy" if line["level"] != "output" else "")
    workers_seen = {line["worker"] for line in udf_lines}
    assert len(workers_seen) == workers


def test_with_batches_in_flight_each_line_names_a_batch_of_its_worker(quiver, tmp_path):
    result = quiver(
        "run", numbers(tmp_path), "--udf", spec("y", "logging_udfs", "loggy", "x"),
        "--batch-rows", BATCH_ROWS, "-o", "out.parquet", "--log-dir", "logs",
        "--max-in-flight", 4,
    )  # fmt: skip
    assert_ok(result)
    lines = [line for line in kept_lines(tmp_path / "logs") if "first=" in line["message"]]
    assert len(lines) == 7 * BATCHES
    for line in lines:
        batch = int(line["message"].rsplit("=", 1)[1]) // BATCH_ROWS
        assert line["batch"] is not None and 0 <= line["batch"] <= batch


def test_logs_level_error_finds_exactly_the_error_lines(quiver, tmp_path):
    directory = run_logged(quiver, tmp_path, "--workers", 2)
    result = quiver("logs", directory, "--level", "error")
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    assert len(printed) == BATCHES
    for batch in range(BATCHES):
        [line] = [p for p in printed if p.endswith(f"loggy: error first={batch * BATCH_ROWS}")]
        assert f"batch {batch}" in line and "ERROR" in line and " y " in line


def test_logs_filters_by_udf_worker_and_text(quiver, tmp_path):
    directory = run_logged(quiver, tmp_path, "--workers", 2)
    raw = quiver("logs", directory, "--grep", "raw fd", "--json")
    assert raw.returncode == 0, raw.stderr
    found = [json.loads(line) for line in raw.stdout.splitlines()]
    assert sorted(line["message"] for line in found) == sorted(
        f"raw fd{fd} first={batch * BATCH_ROWS}" for fd in (1, 2) for batch in range(BATCHES)
    )
    worker = found[0]["worker"]
    one = quiver("logs", directory, "--worker", worker, "--level", "warning", "--json")
    assert one.returncode == 0, one.stderr
    levels = [json.loads(line) for line in one.stdout.splitlines()]
    assert levels and {line["worker"] for line in levels} == {worker}
    assert {line["level"] for line in levels} == {"warning", "error"}
    none = quiver("logs", directory, "--udf", "not_a_udf")
    assert none.returncode == 1 and none.stdout == ""


def test_logs_of_a_directory_without_logs_exits_2(quiver, tmp_path):
    (tmp_path / "empty").mkdir()
    result = quiver("logs", tmp_path / "empty")
    assert result.returncode == 2
    assert "--log-dir" in result.stderr


def test_log_dir_that_cannot_be_written_exits_2_before_any_worker_starts(quiver, tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    result = quiver(
        "run", numbers(tmp_path), "--udf", spec("y", "logging_udfs", "loggy", "x"),
        "-o", "out.parquet", "--log-dir", tmp_path / "a_file" / "logs",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--log-dir" in result.stderr and "a_file" in result.stderr
    assert "quiver-worker" not in result.stderr  # no worker started, none wrote
    assert not (tmp_path / "out.parquet").exists()


def test_errors_still_quote_the_tail_with_a_log_dir(quiver, tmp_path):
    result = quiver(
        "run", numbers(tmp_path), "--udf", spec("y", "logging_udfs", "print_then_die", "x"),
        "-o", "out.parquet", "--log-dir", "logs", "--batch-rows", BATCH_ROWS,
    )  # fmt: skip
    assert result.returncode == 1
    assert "last words before row 0" in result.stderr  # the error's quoted tail
    kept = [line for line in kept_lines(tmp_path / "logs") if "last words" in line["message"]]
    assert [(line["message"], line["batch"]) for line in kept] == [("last words before row 0", 0)]


def test_a_logged_traceback_keeps_its_level_on_every_line(quiver, tmp_path):
    result = quiver(
        "run", numbers(tmp_path), "--udf", spec("y", "logging_udfs", "log_exception", "x"),
        "--batch-rows", ROWS, "-o", "out.parquet", "--log-dir", "logs",
    )  # fmt: skip
    assert_ok(result)
    errors = quiver("logs", tmp_path / "logs", "--level", "error", "--json")
    assert errors.returncode == 0, errors.stderr
    lines = [json.loads(line) for line in errors.stdout.splitlines()]
    messages = [line["message"] for line in lines]
    assert messages[0] == "caught while computing"
    assert messages[1] == "Traceback (most recent call last):"
    assert messages[-1].startswith("ValueError: invalid literal for int()")
    assert {(line["level"], line["logger"], line["batch"]) for line in lines} == {
        ("error", "loggy", 0)
    }
