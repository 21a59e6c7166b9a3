"""The engine's rows (E) of the type contract, docs/types.md: real `quiver run`, real files."""

from __future__ import annotations

import datetime
import decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from quiver_e2e import assert_failed, assert_ok, read_table, spec, write_table

CITIES = ["paris", "tokyo", None, "lima", "oslo"] * 20


def dictionary_table() -> pa.Table:
    """Return 100 rows with a dictionary-encoded string column (every 5th value null)."""
    return pa.table({"id": pa.array(range(100)), "city": pa.array(CITIES).dictionary_encode()})


@pytest.mark.parametrize("source_name", ["in.parquet", "in.arrow", "in.arrows"])
def test_e1_dictionary_string_column_with_a_pyarrow_string_udf(quiver, tmp_path, source_name):
    table = dictionary_table()
    source = write_table(table, tmp_path / source_name, batch_rows=30)
    if source.suffix == ".parquet":  # the file really holds a dictionary column, read back as one
        assert pq.read_schema(source).field("city").type == table.schema.field("city").type
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--udf",
        spec("loud", "contract", "upper", "city"),
        "--udf",
        spec("arrived", "contract", "arrived_type", "city"),
        "--batch-rows",
        16,
        "-o",
        out,
    )
    assert_ok(result)
    got = read_table(out)
    assert got.column("loud").to_pylist() == [c and c.upper() for c in CITIES]
    assert got.schema.field("loud").type == pa.string()
    # The engine sent the column encoded; the worker decoded it for `upper` only.
    assert set(got.column("arrived").to_pylist()) == {str(table.schema.field("city").type)}


def test_e1_dictionary_column_under_row_input(quiver, tmp_path):
    source = write_table(dictionary_table(), tmp_path / "in.arrow")
    out = tmp_path / "out.arrow"
    result = quiver(
        "run",
        source,
        "--udf",
        spec("loud", "contract", "upper", "city"),
        "--input-mode",
        "rows",
        "-o",
        out,
    )
    assert_ok(result)
    assert read_table(out).column("loud").to_pylist() == [c and c.upper() for c in CITIES]


def test_e2_overflow_names_the_udf_the_batch_the_row_and_the_value(quiver, tmp_path):
    values = pa.array([1, 2, 3, 4, 5, 6, 7, 3000, 9, 10], pa.int64())
    source = write_table(pa.table({"x": values}), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    udf = spec("big", "contract", "times_million", "x")
    result = quiver("run", source, "--udf", udf, "--batch-rows", 4, "-o", out)
    # The row is counted within the batch; the engine names the batch and its rows.
    assert_failed(result, out, "'big'", "batch 1 (rows 4-7)", "3000000000 at row 3", "int32")


def test_e3_pandas_integers_with_nulls_stay_exact(quiver, tmp_path):
    values = [2**53 + 1, None, -(2**60), 7]
    source = write_table(pa.table({"x": pa.array(values, pa.int64())}), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    udf = spec("next", "contract", "exact_plus_one", "x")
    result = quiver("run", source, "--udf", udf, "-o", out)
    assert_ok(result)
    assert read_table(out).column("next").to_pylist() == [2**53 + 2, None, -(2**60) + 1, 8]


UTC = datetime.timezone.utc

# column -> (values, identity UDF of udfs/contract.py declared with the column's type)
TYPED = {
    "ts_tz": (
        pa.array(
            [datetime.datetime(2024, 3, 30, 22, tzinfo=UTC), None], pa.timestamp("us", "Asia/Tokyo")
        ),
        "identity_ts_tz",
    ),
    "ts": (pa.array([datetime.datetime(2024, 3, 30, 22), None], pa.timestamp("ms")), "identity_ts"),
    "dec": (pa.array([decimal.Decimal("1.250"), None], pa.decimal128(20, 3)), "identity_decimal"),
    "ls": (pa.array(["a", None], pa.large_string()), "identity_large_string"),
    "lb": (pa.array([b"\x00a", None], pa.large_binary()), "identity_large_binary"),
    "sv": (pa.array(["a", None], pa.string_view()), "identity_string"),
    "lst": (pa.array([[1, None], None], pa.list_(pa.int64())), "identity_list"),
    "st": (
        pa.array([{"a": 1, "b": "x"}, None], pa.struct([("a", pa.int64()), ("b", pa.string())])),
        "identity_struct",
    ),
    "mp": (pa.array([[("k", 1)], None], pa.map_(pa.string(), pa.int64())), "identity_map"),
    "d32": (pa.array([datetime.date(2024, 1, 2), None], pa.date32()), "identity_date"),
    "dic": (pa.array(["x", None]).dictionary_encode(), "identity_string"),
}
NESTED = {"lst", "mp"}  # Parquet names a list's field "element", Arrow "item"


def same_type(got: pa.DataType, want: pa.DataType, column: str) -> bool:
    """Compare types, allowing the list field name Parquet changes."""
    return got.id == want.id if column in NESTED else got == want


@pytest.mark.parametrize(
    "variant",
    [[], ["--input-mode", "rows"], ["--transport", "grpc"], ["--transport", "shm"]],
)
@pytest.mark.parametrize(
    "route", ["parquet-parquet", "parquet-arrow", "arrow-arrows", "arrows-parquet"]
)
def test_e4_every_type_survives_parquet_and_arrow_files(quiver, tmp_path, route, variant):
    source_format, out_format = route.split("-")
    table = pa.table({name: values for name, (values, _) in TYPED.items()})
    source = write_table(table, tmp_path / f"in.{source_format}")
    out = tmp_path / f"out.{out_format}"
    udfs = [o for n, (_, f) in TYPED.items() for o in ("--udf", spec(f"r_{n}", "contract", f, n))]
    assert_ok(quiver("run", source, *udfs, "-o", out, *variant))
    got = read_table(out)
    for name, (values, function) in TYPED.items():
        field, result = got.schema.field(name), got.schema.field(f"r_{name}")
        assert same_type(field.type, values.type, name), (name, field.type)  # passed through
        declared = pa.string() if function == "identity_string" else values.type
        assert same_type(result.type, declared, name), (name, result.type)  # converted (A2, A3)
        assert got.column(name).to_pylist() == values.to_pylist(), name
        assert got.column(f"r_{name}").to_pylist() == values.to_pylist(), name


def test_e5_csv_output_writes_instants_with_their_offset_and_refuses_nested(quiver, tmp_path):
    columns = ["ts_tz", "ts", "dec", "d32", "dic"]
    table = pa.table({name: TYPED[name][0] for name in columns})
    source = write_table(table, tmp_path / "in.parquet")
    out = tmp_path / "out.csv"
    udfs = [o for n in columns for o in ("--udf", spec(f"r_{n}", "contract", TYPED[n][1], n))]
    assert_ok(quiver("run", source, *udfs, "-o", out))
    header, first, _ = out.read_text().split("\n", 2)
    assert first.split(",")[:4] == [
        "2024-03-31 07:00:00.000000+0900",  # Tokyo's wall clock and offset: the same instant
        "2024-03-30 22:00:00.000",
        "1.250",
        "2024-01-02",
    ]
    for name in ["lst", "st", "mp", "sv"]:
        nested = write_table(pa.table({name: TYPED[name][0]}), tmp_path / f"{name}.parquet")
        bad_out = tmp_path / f"{name}.csv"
        result = quiver(
            "run", nested, "--udf", spec("r", "contract", TYPED[name][1], name), "-o", bad_out
        )
        assert_failed(result, bad_out, "cannot write csv output", "Unsupported Type")


def test_e6_csv_input_types_are_inferred(quiver, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("ts,dec,d,s\n2024-03-31 07:00:00+0900,1.250,2024-01-02,a\n")
    out = tmp_path / "out.arrow"
    columns = ["ts", "dec", "d", "s"]
    udfs = [o for c in columns for o in ("--udf", spec(f"t_{c}", "contract", "arrived_type", c))]
    assert_ok(quiver("run", source, *udfs, "-o", out))
    got = read_table(out)
    assert [got.column(f"t_{c}")[0].as_py() for c in columns] == [
        "timestamp[s, tz=UTC]",  # the instant, not the zone
        "double",  # CSV has no decimals
        "date32[day]",
        "string",
    ]
    refused = quiver(
        "run",
        source,
        "--udf",
        spec("r", "contract", "identity_decimal", "dec"),
        "-o",
        tmp_path / "refused.arrow",
    )
    assert_failed(refused, tmp_path / "refused.arrow", "type double", "decimal128(20, 3)")


def test_e7_a_null_in_a_one_column_csv_is_a_row(quiver, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("x\n1\n\n3\n")
    out = tmp_path / "out.arrow"
    assert_ok(quiver("run", source, "--udf", spec("r", "contract", "arrived_type", "x"), "-o", out))
    assert read_table(out).column("x").to_pylist() == [1, None, 3]
