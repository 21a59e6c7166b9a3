"""quiver.Session's metrics and errors across maps: real workers, real Arrow streams."""

from __future__ import annotations

import pyarrow as pa
import pytest

import quiver

pytest.importorskip("quiver._engine", reason="quiver._engine is not built (scripts/setup.sh)")

# How long the sleeping UDF sleeps on each batch.
SLEEP_SECONDS = 0.05


@quiver.udf(returns="int64")
def double(x: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    return pc.multiply(x, 2)


@quiver.udf(returns="int64")
def sleepy(x: pa.Array) -> pa.Array:
    import time

    time.sleep(SLEEP_SECONDS)
    return x


@quiver.udf(returns="int64")
def counting(x: pa.Array) -> pa.Array:
    quiver.metrics.counter("seen").add(len(x))
    return x


def test_a_result_has_the_metrics_of_its_run() -> None:
    table = pa.table({"id": list(range(1000)), "x": list(range(1000))})
    with quiver.Session(workers=2) as s:
        out = s.map(table, udfs=[quiver.call(double, "x")], batch_rows=100, select=["id"])
        result = out.read_all()
        m = s.metrics(out)
    assert result.column("double").to_pylist() == [2 * i for i in range(1000)]
    assert (m["rows"], m["batches"]) == (1000, 10)
    assert m["bytes_in"] == table.nbytes  # every input column read
    (group,) = m["groups"]
    assert group["udfs"] == ["double"]
    assert (group["rows_in"], group["rows_out"], group["batches"]) == (1000, 1000, 10)
    assert group["bytes_in"] == table.column("x").nbytes  # the argument sent
    assert group["bytes_out"] == result.column("double").nbytes
    assert len(group["workers"]) == 2
    assert sum(w["rows_in"] for w in group["workers"]) == 1000
    assert all(w["peak_rss_bytes"] > 0 for w in group["workers"])


def test_udf_time_is_the_time_in_the_udf() -> None:
    batches = 6
    table = pa.table({"x": list(range(batches))})
    with quiver.Session(workers=1) as s:
        out = s.map(table, udfs=[quiver.call(sleepy, "x")], batch_rows=1)
        out.read_all()
        m = s.metrics(out)
    slept = batches * SLEEP_SECONDS * 1e9
    assert m["udf_nanos"] >= slept
    assert m["groups"][0]["udf_nanos"] >= slept
    assert m["udf_nanos"] < 20 * slept  # the sleep, not the session's whole life


def test_session_metrics_sum_every_map() -> None:
    table = pa.table({"x": list(range(50))})
    with quiver.Session(workers=1) as s:
        for _ in range(3):
            s.map(table, udfs=[quiver.call(counting, "x")], batch_rows=20).read_all()
        other = s.map(table, udfs=[quiver.call(double, "x")])
        other.read_all()
        total = s.metrics()
    assert (total["rows"], total["batches"]) == (200, 10)
    groups = {tuple(g["udfs"]): g for g in total["groups"]}
    assert groups[("counting",)]["rows_out"] == 150
    assert groups[("counting",)]["counters"] == {"seen": 150}
    assert groups[("double",)]["rows_out"] == 50


def test_metrics_of_a_reader_from_elsewhere_is_refused() -> None:
    table = pa.table({"x": [1]})
    with quiver.Session(workers=1) as s:
        with pytest.raises(ValueError, match="not a result of this quiver.Session"):
            s.metrics(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))


@quiver.udf(returns="int64")
def chatty(x: pa.Array) -> pa.Array:
    print("from map one", flush=True)
    return x


@quiver.udf(returns="int64")
def dies(x: pa.Array) -> pa.Array:
    import os

    print("from map two", flush=True)
    os._exit(3)


@quiver.udf(returns="int64")
def raises(x: pa.Array) -> pa.Array:
    raise ValueError("map two fails")


@pytest.mark.parametrize("failing", [dies, raises], ids=["crash", "raise"])
def test_an_error_quotes_only_its_own_map(failing: object) -> None:
    table = pa.table({"x": [1, 2, 3]})
    with quiver.Session(workers=1) as s:
        assert s.map(table, udfs=[quiver.call(chatty, "x")]).read_all().num_rows == 3
        with pytest.raises(quiver.QuiverError) as error:
            s.map(table, udfs=[quiver.call(failing, "x")]).read_all()
    text = f"{error.value}\n{error.value.log_tail}"
    assert "from map one" not in text
    if failing is dies:  # its own output is still quoted
        assert "from map two" in error.value.log_tail


def test_a_parquet_dataset_is_read_in_batches_of_about_4_mib(tmp_path) -> None:
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from quiver.udf_call import DATASET_BATCH_BYTES, stream_capsule

    rows = 50_000  # 200-character strings: about 10 MB, one row group
    table = pa.table({"x": [f"{i:0200d}" for i in range(rows)]})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=rows, compression="none")
    dataset = ds.dataset(tmp_path / "in.parquet")
    # The stream the session reads: the scanner's default (131072 rows) would be one batch.
    batches = list(pa.RecordBatchReader._import_from_c_capsule(stream_capsule(dataset)))
    assert len(batches) == 3
    assert all(b.nbytes <= DATASET_BATCH_BYTES * 1.1 for b in batches)
    with quiver.Session(workers=1) as s:
        out = s.map(dataset, udfs=[quiver.call(same, "x")])
        assert out.read_all().column("same").equals(table.column("x"))
        assert s.metrics(out)["rows"] == rows


@quiver.udf(returns="string")
def same(x: pa.Array) -> pa.Array:
    return x
