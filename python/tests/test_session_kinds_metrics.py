"""quiver.Session.metrics(result) for the grouped and table kinds (apply, aggregate, flat_map):
real workers; the figures match the input and the output as those of map do (docs/metrics.md)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from udfs import kinds_session as k

import quiver

pytest.importorskip("quiver._engine", reason="quiver._engine is not built (scripts/setup.sh)")

ROWS = 600
KEYS = 11


def keyed() -> pa.RecordBatchReader:
    """k cycles through KEYS values, so every group spans every batch of 50 rows."""
    table = pa.table(
        {
            "k": pa.array([(i * 7) % KEYS for i in range(ROWS)], pa.int64()),
            "x": pa.array([float(i % 13) for i in range(ROWS)]),
            "name": pa.array([" ".join(["w"] * (i % 3)) for i in range(ROWS)]),
        }
    )
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=50))


def the_group(m: dict) -> dict:
    (group,) = m["groups"]
    assert len(group["workers"]) == 2
    assert sum(w["rows_in"] for w in group["workers"]) == group["rows_in"]
    assert sum(w["rows_out"] for w in group["workers"]) == group["rows_out"]
    assert all(w["peak_rss_bytes"] > 0 for w in group["workers"])
    return group


def test_apply_result_metrics_match_its_rows() -> None:
    with quiver.Session(workers=2) as s:
        out = s.apply(keyed(), k.demean, group_by="k", batch_rows=100)
        result = out.read_all()
        m = s.metrics(out)
    assert result.num_rows == ROWS
    group = the_group(m)
    assert group["udfs"] == ["demean"]
    assert (group["rows_in"], group["rows_out"]) == (ROWS, ROWS)
    assert group["bytes_out"] > 0 and group["udf_nanos"] > 0


def test_aggregate_result_metrics_count_one_row_out_per_group() -> None:
    with quiver.Session(workers=2) as s:
        out = s.aggregate(keyed(), {"n": quiver.call(k.count, "x")}, group_by="k")
        result = out.read_all()
        m = s.metrics(out)
    assert result.num_rows == KEYS
    assert (m["rows"], m["batches"]) == (ROWS, ROWS // 50)  # the input read, as for map
    group = the_group(m)
    assert group["udfs"] == ["n"]
    assert (group["rows_in"], group["rows_out"]) == (ROWS, KEYS)


def test_flat_map_result_metrics_count_its_output_rows() -> None:
    with quiver.Session(workers=2) as s:
        out = s.flat_map(keyed(), quiver.call(k.words, "name"), batch_rows=50)
        result = out.read_all()
        m = s.metrics(out)
        total = s.metrics()
    assert result.num_rows == sum(i % 3 for i in range(ROWS))
    group = the_group(m)
    assert (group["rows_in"], group["rows_out"]) == (ROWS, result.num_rows)
    assert group["batches"] == ROWS // 50
    assert total["groups"][0]["rows_out"] == result.num_rows
