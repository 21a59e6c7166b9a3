"""The type contract of docs/types.md: one test (or parametrized case) per row, by row id.

Arguments go through the evaluators' ``prepare`` exactly as the worker calls it; results go
through ``coerce_result``. The end-to-end rows (the engine's side) are in tests/e2e/test_types.py.
"""

from __future__ import annotations

import datetime
import decimal
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import quiver
from quiver.worker.errors import WorkerFailure
from quiver.worker.evaluators import ArrowEvaluator, PandasEvaluator, coerce_result

PARIS = datetime.timezone(datetime.timedelta(hours=1))


def arrow_args(*arrays: pa.Array, decode: bool = True) -> list[pa.Array]:
    """Return what a pyarrow UDF receives for ``arrays``."""
    return ArrowEvaluator(lambda *a: None, "f", "", decode).prepare(list(arrays))


def pandas_args(*arrays: pa.Array, decode: bool = True, zone: str = "") -> list[pd.Series]:
    """Return what a pandas UDF receives for ``arrays``."""
    return PandasEvaluator(lambda *a: None, "f", zone, decode).prepare(list(arrays))


def coerced(value, declared: str) -> pa.Array:
    """Return a UDF result after the contract's conversion to the declared type."""
    return coerce_result(value, quiver.parse_type(declared), "f", len(value))


def refused(value, declared: str) -> str:
    """Return the error message for a result the contract refuses; it must name the UDF."""
    with pytest.raises(WorkerFailure) as caught:
        coerced(value, declared)
    assert caught.value.udf_name == "f"
    assert "UDF 'f'" in caught.value.message
    return caught.value.message


CITIES = pa.array(["paris", None, "lima", "paris"])

# ---- A: what a pyarrow UDF receives ----

PLAIN = {
    "int8": pa.array([1, None, -3], pa.int8()),
    "uint64": pa.array([2**64 - 1, None, 0], pa.uint64()),
    "float32": pa.array([1.5, None, float("nan")], pa.float32()),
    "bool": pa.array([True, None, False]),
    "string": pa.array(["a", None, "é"]),
    "large_string": pa.array(["a", None, "é"], pa.large_string()),
    "binary": pa.array([b"\x00", None, b"z"]),
    "large_binary": pa.array([b"\x00", None, b"z"], pa.large_binary()),
    "date32": pa.array([0, None, 19000], pa.date32()),
    "time64": pa.array([1, None, 2], pa.time64("us")),
    "duration": pa.array([1, None, 2], pa.duration("ms")),
    "timestamp": pa.array([1, None, 2], pa.timestamp("us")),
    "timestamp_tz": pa.array([1, None, 2], pa.timestamp("ns", tz="Europe/Paris")),
    "decimal128": pa.array([decimal.Decimal("1.25"), None], pa.decimal128(10, 2)),
    "decimal256": pa.array([decimal.Decimal("1.25"), None], pa.decimal256(40, 2)),
    "list": pa.array([[1, None], None, []], pa.list_(pa.int64())),
    "large_list": pa.array([[1, None], None, []], pa.large_list(pa.int64())),
    "fixed_size_list": pa.array([[1, 2], None], pa.list_(pa.int64(), 2)),
    "struct": pa.array([{"a": 1, "b": "x"}, None], pa.struct([("a", pa.int64()), ("b", "string")])),
    "map": pa.array([[("k", 1)], None], pa.map_(pa.string(), pa.int64())),
    "null": pa.nulls(3),
}


@pytest.mark.parametrize("name", list(PLAIN))
def test_a1_plain_types_arrive_unchanged(name):
    (got,) = arrow_args(PLAIN[name])
    assert got is PLAIN[name]


def test_a2_dictionary_arrives_decoded_so_string_kernels_work():
    (got,) = arrow_args(CITIES.dictionary_encode())
    assert got.type == pa.string()
    assert pc.utf8_upper(got).to_pylist() == ["PARIS", None, "LIMA", "PARIS"]


def test_a2_dictionary_kept_with_decode_false():
    encoded = CITIES.dictionary_encode()
    (got,) = arrow_args(encoded, decode=False)
    assert got is encoded


def test_a2_decode_false_is_a_decorator_option():
    @quiver.udf(returns="string", decode=False)
    def keep(x: pa.Array) -> pa.Array:
        return x

    assert keep.decode is False
    assert quiver.udf(returns="string")(keep.func).decode is True
    with pytest.raises(TypeError, match="decode= must be True or False"):
        quiver.udf(returns="string", decode="keep")


@pytest.mark.parametrize(
    ("view", "plain"),
    [
        (pa.array(["a", None, "é"], pa.string_view()), pa.string()),
        (pa.array([b"a", None], pa.binary_view()), pa.binary()),
    ],
)
def test_a3_views_arrive_as_plain_strings_and_binaries(view, plain):
    (got,) = arrow_args(view)
    assert got.type == plain and got.to_pylist() == view.to_pylist()
    (kept,) = arrow_args(view, decode=False)
    assert kept is view


def test_a4_run_end_encoded_arrives_decoded():
    encoded = pa.RunEndEncodedArray.from_arrays([2, 3], ["a", None])
    (got,) = arrow_args(encoded)
    assert got.type == pa.string() and got.to_pylist() == ["a", "a", None]


def test_a5_nested_dictionaries_and_views_are_decoded():
    words = pa.array(["x", "y"]).dictionary_encode()
    nested = pa.StructArray.from_arrays(
        [words, pa.array([["a"], None], pa.list_(pa.string_view()))], ["w", "l"]
    )
    (got,) = arrow_args(nested)
    assert got.type == pa.struct([("w", pa.string()), ("l", pa.list_(pa.string()))])
    assert got.to_pylist() == nested.to_pylist()


def test_a6_zoned_timestamps_arrive_with_their_zone_even_with_a_session_zone():
    stamps = PLAIN["timestamp_tz"]
    (got,) = ArrowEvaluator(lambda x: x, "f", "Asia/Tokyo").prepare([stamps])
    assert got.type == pa.timestamp("ns", tz="Europe/Paris")


# ---- P: what a pandas UDF receives ----


def test_p1_integers_without_nulls_are_numpy_integers():
    (got,) = pandas_args(pa.array([1, 2], pa.int32()))
    assert got.dtype == np.int32


@pytest.mark.parametrize(
    ("arrow_type", "dtype"),
    [(pa.int64(), "Int64"), (pa.int8(), "Int8"), (pa.uint64(), "UInt64"), (pa.uint16(), "UInt16")],
)
def test_p1_integers_with_nulls_are_nullable_integers(arrow_type, dtype):
    big = 2**53 + 1 if arrow_type.bit_width == 64 else 7
    (got,) = pandas_args(pa.array([big, None], arrow_type))
    assert str(got.dtype) == dtype
    assert got[0] == big and got[1] is pd.NA  # exact: no float64 rounding


def test_p2_bools_with_nulls_are_nullable_booleans():
    (plain,) = pandas_args(pa.array([True, False]))
    (nulled,) = pandas_args(pa.array([True, None]))
    assert plain.dtype == np.bool_ and str(nulled.dtype) == "boolean"


def test_p3_floats_are_numpy_floats_with_nan_for_null():
    (got,) = pandas_args(pa.array([1.5, None], pa.float32()))
    assert got.dtype == np.float32 and math.isnan(got[1])


@pytest.mark.parametrize("arrow_type", [pa.string(), pa.large_string(), pa.string_view()])
def test_p4_strings_are_pandas_strings(arrow_type):
    (got,) = pandas_args(pa.array(["a", None], arrow_type))
    assert isinstance(got.dtype, pd.StringDtype) and got[0] == "a" and pd.isna(got[1])


@pytest.mark.parametrize("arrow_type", [pa.binary(), pa.large_binary()])
def test_p5_binaries_are_objects_of_bytes(arrow_type):
    (got,) = pandas_args(pa.array([b"a", None], arrow_type))
    assert got.dtype == object and got[0] == b"a" and got[1] is None


def test_p6_dictionary_is_decoded_unless_kept_as_a_categorical():
    (decoded,) = pandas_args(CITIES.dictionary_encode())
    (kept,) = pandas_args(CITIES.dictionary_encode(), decode=False)
    assert isinstance(decoded.dtype, pd.StringDtype)
    assert isinstance(kept.dtype, pd.CategoricalDtype)
    assert decoded.str.upper().tolist()[0] == "PARIS"


def test_p7_timestamps_keep_unit_and_zone_or_move_to_the_session_zone():
    naive, zoned = PLAIN["timestamp"], PLAIN["timestamp_tz"]
    got_naive, got_zoned = pandas_args(naive, zoned)
    assert str(got_naive.dtype) == "datetime64[us]"
    assert str(got_zoned.dtype) == "datetime64[ns, Europe/Paris]"
    (moved,) = pandas_args(zoned, zone="Asia/Tokyo")
    assert str(moved.dtype) == "datetime64[ns, Asia/Tokyo]" and moved[0] == got_zoned[0]


def test_p8_dates_are_objects_of_datetime_date():
    (got,) = pandas_args(pa.array([0, None], pa.date32()))
    assert got[0] == datetime.date(1970, 1, 1) and got[1] is None


def test_p9_decimals_are_objects_of_decimal():
    (got,) = pandas_args(PLAIN["decimal128"])
    assert got.dtype == object and got[0] == decimal.Decimal("1.25")


def test_p10_nested_values_are_python_objects():
    lists, structs, maps = pandas_args(PLAIN["list"], PLAIN["struct"], PLAIN["map"])
    assert isinstance(lists[0], np.ndarray) and lists[0][0] == 1 and math.isnan(lists[0][1])
    assert structs[0] == {"a": 1, "b": "x"}
    assert maps[0] == [("k", 1)]


# ---- R: what a UDF may return ----


@pytest.mark.parametrize("name", [n for n in PLAIN if n != "null"])
def test_r1_the_declared_type_is_returned_as_is(name):
    value = PLAIN[name]
    assert coerce_result(value, value.type, "f", len(value)) is value


def test_r2_integers_widen_and_become_floats_when_exact():
    assert coerced(pa.array([1, None], pa.int8()), "int64").to_pylist() == [1, None]
    assert coerced(pd.Series([2**53, -3]), "float64").to_pylist() == [2.0**53, -3.0]
    message = refused(pa.array([0, 2**53 + 1]), "float64")
    assert "9007199254740993 at row 1" in message
    assert "16777217 at row 0" in refused(pa.array([2**24 + 1]), "float32")


@pytest.mark.parametrize(
    "value",
    [pa.array([1, 2, 3_000_000_000]), pd.Series([1, 2, 3_000_000_000]), [1, 2, 3_000_000_000]],
    ids=["arrow", "pandas", "list"],
)
def test_r3_overflow_names_the_row_and_the_value(value):
    message = refused(value, "int32")
    assert "3000000000" in message and "row 2" in message


def test_r3_overflow_in_a_python_object_result():
    message = refused(pd.Series([1, 2**70], dtype=object), "int64")
    assert "row 1" in message and str(2**70) in message


def test_r4_floats_become_integers_only_when_integral():
    assert coerced(pd.Series([1.0, np.nan, -2.0]), "int64").to_pylist() == [1, None, -2]
    message = refused(pd.Series([1.0, 2.5]), "int64")
    assert "2.5 at row 1" in message


def test_r5_narrower_floats_are_refused():
    message = refused(pa.array([0.1]), "float32")
    assert "type double" in message and "return type is float" in message


def test_r6_nan_is_null_from_pandas_and_numpy_but_a_value_from_arrow_and_lists():
    assert coerced(pd.Series([1.0, np.nan]), "float64").to_pylist() == [1.0, None]
    assert coerced(np.array([np.nan]), "float64").to_pylist() == [None]
    from_arrow = coerced(pa.array([float("nan"), None]), "float64").to_pylist()
    assert math.isnan(from_arrow[0]) and from_arrow[1] is None
    assert math.isnan(coerced([float("nan")], "float64").to_pylist()[0])
    nullable = pd.Series([1.5, None], dtype="Float64")
    assert coerced(nullable, "float64").to_pylist() == [1.5, None]


def test_r7_object_dtype_converts_by_the_values_it_holds():
    assert coerced(pd.Series(["a", None], dtype=object), "string").type == pa.string()
    assert coerced(pd.Series([1, None], dtype=object), "float64").to_pylist() == [1.0, None]
    decimals = pd.Series([decimal.Decimal("1.5"), None], dtype=object)
    assert coerced(decimals, "decimal128(10, 2)").to_pylist() == [decimal.Decimal("1.50"), None]
    structs = pd.Series([{"b": "x", "a": 1}], dtype=object)
    assert coerced(structs, "struct<a: int64, b: string>").to_pylist() == [{"a": 1, "b": "x"}]
    maps = pd.Series([[("k", 1)], None], dtype=object)
    assert coerced(maps, "map<string, int64>").to_pylist() == [[("k", 1)], None]


def test_r7_mixed_objects_name_the_first_value_that_does_not_fit():
    message = refused(pd.Series([1, 2, "three"], dtype=object), "int64")
    assert "row 2: 'three'" in message


@pytest.mark.parametrize(
    "value",
    [
        pd.Series(["a", None]),  # pandas 3 strings become large_string
        pa.array(["a", None], pa.large_string()),
        pa.array(["a", None], pa.string_view()),
        pa.array(["a", None]).dictionary_encode(),
        pd.Series(["a", None], dtype="category"),
    ],
    ids=["pandas-str", "large_string", "string_view", "dictionary", "categorical"],
)
def test_r8_every_string_layout_becomes_the_declared_one(value):
    got = coerced(value, "string")
    assert got.type == pa.string() and got.to_pylist() == ["a", None]


@pytest.mark.parametrize(
    ("value", "declared"),
    [
        (pa.array([1]), "string"),
        (pa.array(["1"]), "int64"),
        (pa.array([True]), "int64"),
        (pd.Series([1.5]), "string"),
        (pa.array([1], pa.timestamp("us")), "timestamp[us, tz=UTC]"),
        (pa.array([1], pa.timestamp("us", tz="UTC")), "timestamp[us]"),
        (pa.array([decimal.Decimal("1.5")]), "float64"),
    ],
    ids=[
        "int-string",
        "string-int",
        "bool-int",
        "float-string",
        "local-zoned",
        "zoned-local",
        "dec-float",
    ],
)
def test_r9_conversions_that_change_meaning_are_refused(value, declared):
    message = refused(value, declared)
    assert "convert it in the UDF" in message


def test_r10_timestamps_change_zone_and_unit_when_no_instant_changes():
    paris = pd.Series(pd.to_datetime(["2024-03-30 23:00"]).tz_localize("Europe/Paris"))
    got = coerced(paris, "timestamp[us, tz=UTC]")
    assert got.type == pa.timestamp("us", tz="UTC")
    assert got[0].as_py() == datetime.datetime(2024, 3, 30, 22, 0, tzinfo=datetime.timezone.utc)
    message = refused(pa.array([1_000, 1_001], pa.timestamp("ns")), "timestamp[us]")
    assert "at row 1" in message


def test_r11_decimals_rescale_only_without_loss():
    value = pa.array([decimal.Decimal("1.5"), decimal.Decimal("1.234")], pa.decimal128(10, 3))
    assert coerced(value.slice(0, 1), "decimal128(10, 2)").to_pylist() == [decimal.Decimal("1.50")]
    message = refused(value, "decimal128(10, 2)")
    assert "Decimal('1.234') at row 1" in message
    assert coerced(pa.array([12]), "decimal128(10, 2)").to_pylist() == [decimal.Decimal("12.00")]


def test_r12_nested_results_convert_child_by_child():
    lists = pa.array([[1], [2, 3_000_000_000]], pa.list_(pa.int64()))
    assert coerced(lists.slice(0, 1), "list<int32>").type == pa.list_(pa.int32())
    assert "row 1" in refused(lists, "list<int32>")
    struct = pa.array([{"b": "x", "a": 1}])
    assert coerced(struct, "struct<a: int32, b: string>").to_pylist() == [{"a": 1, "b": "x"}]
    refused(pa.array([{"c": 1}]), "struct<a: int64>")


def test_r13_results_of_the_wrong_length_or_kind_are_refused():
    with pytest.raises(WorkerFailure, match="returned 1 rows for a batch of 2 rows"):
        coerce_result(pa.array([1]), pa.int64(), "f", 2)
    with pytest.raises(WorkerFailure, match="returned int; expected a pyarrow Array"):
        coerce_result(5, pa.int64(), "f", 1)
