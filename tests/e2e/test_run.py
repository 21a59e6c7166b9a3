"""`quiver run` end to end: results equal the same UDFs computed in process."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from quiver_e2e import (
    assert_column,
    assert_ok,
    expected,
    people_table,
    read_table,
    spec,
    summary_batches,
    typed_table,
    write_table,
)

# column -> (arrow UDFs of typed.py to run on it)
TYPE_CASES = {
    "i32": ["identity_int32", "plus_one_int32"],
    "i64": ["identity_int64", "plus_one_int64"],
    "f64": ["identity_float64", "plus_one_float64"],
    "s": ["identity_string", "shout"],
    "ls": ["identity_large_string", "shout_large"],
    "lst": ["identity_list", "list_length"],
    "st": ["identity_struct", "struct_a"],
    "ts": ["identity_timestamp", "local_hour"],
    "dec": ["identity_decimal", "decimal_double"],
    "dic": ["decode_upper"],
}


# How the batches reach the workers: every variant must give the same results.
VARIANTS = {
    "columnar-uds": [],
    "rows": ["--input-mode", "rows"],
    "grpc": ["--transport", "grpc"],
    "shm": ["--transport", "shm"],
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("column", list(TYPE_CASES))
def test_types_round_trip_through_parquet_in_sliced_batches(quiver, tmp_path, column, variant):
    table = typed_table(50)
    source = write_table(table, tmp_path / "in.parquet", batch_rows=20)
    out = tmp_path / "out.parquet"
    functions = TYPE_CASES[column]
    udfs = [spec(f"r{i}", "typed", f, column) for i, f in enumerate(functions)]
    udfs.append(spec("text", "typed", "describe", column))
    # 7 rows per batch: batches are slices of the Parquet pages and cross row groups.
    udf_options = [option for udf in udfs for option in ("--udf", udf)]
    result = quiver("run", source, *udf_options, "--batch-rows", 7, "-o", out, *VARIANTS[variant])
    assert_ok(result)
    assert summary_batches(result.stderr) >= 8  # at most 7 rows each; row groups may split more

    got = read_table(out)
    assert got.column_names == [
        *table.column_names,
        *[f"r{i}" for i in range(len(functions))],
        "text",
    ]
    for name in table.column_names:  # pass-through columns come back as they were
        assert got.column(name).to_pylist() == table.column(name).to_pylist(), name
        if name != "dic":
            assert got.schema.field(name).type == table.schema.field(name).type, name
    for i, function in enumerate(functions):
        assert_column(got, f"r{i}", expected("typed", function, table.column(column)))
    assert_column(got, "text", expected("typed", "describe", table.column(column)))


@pytest.mark.parametrize("workers", [1, 3])
def test_several_udfs_pandas_and_arrow_with_computed_arguments(quiver, tmp_path, workers):
    table = people_table(3000)
    source = write_table(table, tmp_path / "people.parquet")
    out = tmp_path / "out.arrow"
    result = quiver(
        "run",
        source,
        "--udf",
        spec("loud", "frames", "shout", "name"),
        "--udf",
        spec("gross", "frames", "with_tax", "value"),
        "--udf",
        spec("sum", "frames", "total", "id", "add(id, 10)"),
        "--udf",
        spec("joined", "typed", "join_dash", "utf8_upper(city)", "value", "'x''y'"),
        "--batch-rows",
        250,
        "--workers",
        workers,
        "-o",
        out,
    )
    assert_ok(result)
    assert summary_batches(result.stderr) == 12
    got = read_table(out)
    assert got.column_names == ["id", "name", "value", "city", "loud", "gross", "sum", "joined"]
    assert got.column("id").to_pylist() == list(range(3000))  # order kept over workers
    assert_column(got, "loud", expected("frames", "shout", table.column("name")))
    assert_column(got, "gross", expected("frames", "with_tax", table.column("value")))
    assert_column(
        got, "sum", expected("frames", "total", table.column("id"), pc.add(table.column("id"), 10))
    )
    literal = pa.array(["x'y"] * 3000)
    want = expected(
        "typed", "join_dash", pc.utf8_upper(table.column("city")), table.column("value"), literal
    )
    assert_column(got, "joined", want)


def test_one_row_per_batch(quiver, tmp_path):
    table = people_table(300)
    source = write_table(table, tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--udf", spec("loud", "typed", "shout", "name"), "--batch-rows", 1, "-o", out
    )
    assert_ok(result)
    assert summary_batches(result.stderr) == 300
    assert_column(read_table(out), "loud", expected("typed", "shout", table.column("name")))


def test_one_large_batch(quiver, tmp_path):
    table = people_table(200_000)
    source = write_table(table, tmp_path / "in.arrows")  # one IPC batch of 200,000 rows
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--udf",
        spec("gross", "frames", "with_tax", "value"),
        "--batch-rows",
        1_000_000,
        "-o",
        out,
    )
    assert_ok(result)
    assert summary_batches(result.stderr) == 1
    assert_column(read_table(out), "gross", expected("frames", "with_tax", table.column("value")))


@pytest.mark.parametrize(
    "source_name, out_name",
    [
        ("in.parquet", "out.csv"),
        ("in.csv", "out.arrow"),
        ("in.arrow", "out.arrows"),
        ("in.arrows", "out.parquet"),
        ("in.feather", "out.pq"),
    ],
)
def test_formats_in_and_out(quiver, tmp_path, source_name, out_name):
    table = people_table(1000)
    source = write_table(table, tmp_path / source_name, batch_rows=300)
    out = tmp_path / out_name
    result = quiver(
        "run",
        source,
        "--udf",
        spec("loud", "typed", "shout", "name"),
        "--batch-rows",
        128,
        "-o",
        out,
    )
    assert_ok(result)
    got = read_table(out)
    assert got.column_names == ["id", "name", "value", "city", "loud"]
    for name in table.column_names:
        assert got.column(name).to_pylist() == table.column(name).to_pylist(), name
    assert got.column("loud").to_pylist() == pc.utf8_upper(table.column("name")).to_pylist()


def test_explicit_formats_override_extensions(quiver, tmp_path):
    table = people_table(100)
    source = write_table(table, tmp_path / "in.parquet")
    renamed = source.rename(tmp_path / "in.data")
    out = tmp_path / "out.data"
    result = quiver(
        "run",
        renamed,
        "--input-format",
        "parquet",
        "--output-format",
        "arrows",
        "--udf",
        spec("loud", "typed", "shout", "name"),
        "-o",
        out,
    )
    assert_ok(result)
    with pa.ipc.open_stream(out) as reader:
        got = reader.read_all()
    assert got.num_rows == 100


def test_select_keeps_the_named_columns_in_order(quiver, tmp_path):
    table = people_table(100).rename_columns(["id", "full name", "value", "city"])
    source = write_table(table, tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--select",
        "city, `full name`",
        "--udf",
        spec("loud", "typed", "shout", "`full name`"),
        "-o",
        out,
    )
    assert_ok(result)
    got = read_table(out)
    assert got.column_names == ["city", "full name", "loud"]
    assert got.column("city").to_pylist() == table.column("city").to_pylist()


def test_select_nothing_keeps_only_results(quiver, tmp_path):
    table = people_table(100)
    source = write_table(table, tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--select",
        "",
        "--udf",
        spec("loud", "typed", "shout", "name"),
        "--udf",
        spec("name", "typed", "shout", "city"),
        "-o",
        out,
    )
    assert_ok(result)
    assert read_table(out).column_names == ["loud", "name"]


def test_noop_output_writes_nothing(quiver, tmp_path):
    source = write_table(people_table(1000), tmp_path / "in.parquet")
    result = quiver(
        "run", source, "--udf", spec("loud", "typed", "shout", "name"), "--output-format", "noop"
    )
    assert_ok(result)
    assert "discarded (noop)" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_quiet_prints_nothing(quiver, tmp_path):
    source = write_table(people_table(10), tmp_path / "in.parquet")
    result = quiver(
        "run",
        source,
        "--udf",
        spec("loud", "typed", "shout", "name"),
        "--quiet",
        "-o",
        tmp_path / "out.parquet",
    )
    assert_ok(result)
    assert result.stderr == ""
    assert result.stdout == ""


def test_summary_reports_the_run(quiver, tmp_path):
    source = write_table(people_table(5000), tmp_path / "in.parquet")
    result = quiver(
        "run", source, "--udf", spec("loud", "typed", "shout", "name"), "-o", "out.parquet"
    )
    assert_ok(result)
    assert "rows     5,000 in 1 batch (" in result.stderr
    assert "rows/s" in result.stderr and "MB/s" in result.stderr
    assert "in UDFs" in result.stderr
    assert "output   out.parquet" in result.stderr
    assert "\r" not in result.stderr  # no progress line when stderr is not a terminal
    assert (tmp_path / "out.parquet").exists()  # relative to the current directory


def test_empty_input_file(quiver, tmp_path):
    table = typed_table(0)
    source = write_table(table, tmp_path / "empty.parquet")
    out = tmp_path / "out.parquet"
    result = quiver("run", source, "--udf", spec("loud", "typed", "shout", "s"), "-o", out)
    assert_ok(result)
    got = read_table(out)
    assert got.num_rows == 0
    assert got.column_names == [*table.column_names, "loud"]
    assert got.schema.field("loud").type == pa.string()


def test_empty_batch_in_the_middle(quiver, tmp_path):
    table = people_table(7)
    source = tmp_path / "in.arrows"
    with pa.ipc.new_stream(source, table.schema) as writer:
        writer.write_batch(table.slice(0, 3).to_batches()[0])
        writer.write_batch(pa.RecordBatch.from_pylist([], schema=table.schema))
        writer.write_batch(table.slice(3, 4).to_batches()[0])
    out = tmp_path / "out.parquet"
    result = quiver("run", source, "--udf", spec("loud", "typed", "shout", "name"), "-o", out)
    assert_ok(result)
    got = read_table(out)
    assert got.column("id").to_pylist() == list(range(7))
    assert got.column("loud").to_pylist() == pc.utf8_upper(table.column("name")).to_pylist()


def test_noisy_udf_still_gives_correct_results(quiver, tmp_path):
    table = people_table(2000)
    source = write_table(table, tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--udf",
        spec("double", "noisy", "chatty", "id"),
        "--batch-rows",
        200,
        "-o",
        out,
    )
    assert_ok(result)
    assert "stdout line" not in result.stdout  # worker output never reaches ours
    got = read_table(out)
    assert got.column("double").to_pylist() == [2 * i for i in range(2000)]


def test_output_replaces_an_existing_file(quiver, tmp_path):
    source = write_table(people_table(10), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    out.write_bytes(b"old contents")
    result = quiver("run", source, "--udf", spec("loud", "typed", "shout", "name"), "-o", out)
    assert_ok(result)
    assert read_table(out).num_rows == 10


def test_help_teaches_by_example(quiver):
    result = quiver("run", "--help")
    assert result.returncode == 0
    for text in (
        "NAME=PATH.py:FUNCTION(ARG, ...)",
        "Examples:",
        "--udf",
        "--batch-rows",
        "utf8_upper(name)",
        "noop",
    ):
        assert text in result.stdout, text
    top = quiver("--help")
    assert top.returncode == 0 and "run" in top.stdout


def test_version(quiver):
    result = quiver("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("quiver 0.1.0 (Apache Arrow ")


def test_workers_run_blas_single_threaded(quiver, tmp_path):
    source = write_table(people_table(10), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--udf", spec("t", "environment", "blas_threads", "id"), "-o", out
    )
    assert_ok(result)
    assert set(read_table(out).column("t").to_pylist()) == {"1"}
