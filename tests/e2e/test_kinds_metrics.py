"""`quiver run --metrics FILE` for the grouped and table kinds: the figures match the input and
output, per step and per worker, as the scalar kinds' do (docs/metrics.md)."""

from __future__ import annotations

import json

import pyarrow as pa
from quiver_e2e import assert_ok, read_table, udf_file, write_table

ROWS = 600
KEYS = 11


def keyed(tmp_path) -> str:
    table = pa.table(
        {
            "k": pa.array([(i * 7) % KEYS for i in range(ROWS)], pa.int64()),
            "x": pa.array([float(i % 13) for i in range(ROWS)]),
            "n": pa.array([i % 3 for i in range(ROWS)], pa.int64()),
        }
    )
    return write_table(table, tmp_path / "in.parquet", batch_rows=50)


def run_kind(quiver, tmp_path, *flags: object) -> tuple[dict, str, pa.Table]:
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", keyed(tmp_path), *flags, "--batch-rows", 50, "--workers", 2,
        "-o", out, "--metrics", tmp_path / "metrics.json",
    )  # fmt: skip
    assert_ok(result)
    return json.loads((tmp_path / "metrics.json").read_text()), result.stderr, read_table(out)


def test_udaf_rows_in_are_the_input_rows_and_rows_out_the_groups(quiver, tmp_path):
    agg = f"rmean={udf_file('kinds')}:robust_mean(x)"
    metrics, stderr, out = run_kind(quiver, tmp_path, "--group-by", "k", "--agg", agg)
    assert out.num_rows == KEYS
    [group] = metrics["groups"]
    assert group["udfs"] == ["rmean"]
    assert group["rows_in"] == ROWS
    assert group["rows_out"] == KEYS
    assert len(group["workers"]) == 2
    assert sum(w["rows_out"] for w in group["workers"]) == KEYS
    assert group["bytes_in"] >= 8 * ROWS and group["bytes_out"] >= 8 * KEYS
    assert all(w["peak_rss_bytes"] > 10 << 20 for w in group["workers"])
    assert group["udf_nanos"] > 0 and group["cpu_nanos"] > 0
    assert "rows in" in stderr and "rmean" in stderr.split("rows in", 1)[1]


def test_partial_udaf_reports_its_states_step_then_its_merge(quiver, tmp_path):
    agg = f"m={udf_file('kinds')}:Mean(x)"
    metrics, _, out = run_kind(quiver, tmp_path, "--group-by", "k", "--agg", agg)
    assert out.num_rows == KEYS
    states, merge = metrics["groups"]
    assert states["udfs"] == ["m (states)"] and merge["udfs"] == ["m (merge)"]
    assert states["rows_in"] == ROWS
    # Each input batch of 50 rows holds a piece of every key: one state per key and batch.
    assert states["rows_out"] == merge["rows_in"] == KEYS * (ROWS // 50)
    assert merge["rows_out"] == KEYS


def test_grouped_map_rows_out_are_the_output_rows(quiver, tmp_path):
    apply = f"{udf_file('kinds')}:ranked"
    metrics, _, out = run_kind(quiver, tmp_path, "--group-by", "k", "--apply", apply)
    [group] = metrics["groups"]
    assert group["udfs"] == ["ranked"]
    assert group["rows_in"] == ROWS
    assert group["rows_out"] == out.num_rows == ROWS


def test_udtf_rows_out_are_the_output_rows(quiver, tmp_path):
    udtf = f"r={udf_file('kinds')}:repeat(n)"
    metrics, stderr, out = run_kind(quiver, tmp_path, "--udtf", udtf)
    [group] = metrics["groups"]
    assert group["udfs"] == ["r"]
    assert group["rows_in"] == ROWS
    assert group["rows_out"] == out.num_rows == sum(i % 3 for i in range(ROWS))
    assert group["batches"] == ROWS // 50
    assert metrics["read_nanos"] > 0 and metrics["write_nanos"] > 0
