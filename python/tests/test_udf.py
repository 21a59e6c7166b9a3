"""Tests of @quiver.udf: type strings, eval-type inference and errors."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import quiver
from quiver.types import ACCEPTED_FORMS, parse_type

# ---- type strings ----


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("string", pa.string()),
        ("large_string", pa.large_string()),
        ("int32", pa.int32()),
        ("int64", pa.int64()),
        ("float32", pa.float32()),
        ("float64", pa.float64()),
        ("bool", pa.bool_()),
        ("binary", pa.binary()),
        ("date32", pa.date32()),
        ("timestamp[us, tz=UTC]", pa.timestamp("us", tz="UTC")),
        ("timestamp[ns]", pa.timestamp("ns")),
        ("timestamp[ms, tz=America/New_York]", pa.timestamp("ms", tz="America/New_York")),
        ("timestamp[s,tz=+05:30]", pa.timestamp("s", tz="+05:30")),
        ("decimal128(10, 2)", pa.decimal128(10, 2)),
        ("decimal128(38,0)", pa.decimal128(38, 0)),
        ("list<int64>", pa.list_(pa.int64())),
        ("list<item: string>", pa.list_(pa.string())),
        ("large_list<float64>", pa.large_list(pa.float64())),
        ("struct<a: int64, b: string>", pa.struct([("a", pa.int64()), ("b", pa.string())])),
        ("struct<>", pa.struct([])),
        (
            "struct<xs: list<int32>, inner: struct<t: timestamp[us, tz=UTC]>>",
            pa.struct(
                [
                    ("xs", pa.list_(pa.int32())),
                    ("inner", pa.struct([("t", pa.timestamp("us", tz="UTC"))])),
                ]
            ),
        ),
        ("map<string, int64>", pa.map_(pa.string(), pa.int64())),
        ("  list< int64 >  ", pa.list_(pa.int64())),
        ("duration[ms]", pa.duration("ms")),
    ],
)
def test_parse_type(text: str, expected: pa.DataType) -> None:
    assert parse_type(text) == expected


@pytest.mark.parametrize(
    "dtype",
    [
        pa.string(),
        pa.large_string(),
        pa.binary(),
        pa.bool_(),
        pa.int8(),
        pa.uint64(),
        pa.float16(),
        pa.float32(),
        pa.float64(),
        pa.date32(),
        pa.date64(),
        pa.null(),
        pa.timestamp("us", tz="UTC"),
        pa.decimal256(40, 5),
        pa.list_(pa.int64()),
        pa.large_list(pa.string()),
        pa.map_(pa.string(), pa.list_(pa.int8())),
        pa.struct([("a", pa.int64()), ("b", pa.string())]),
    ],
)
def test_parse_type_reads_what_pyarrow_prints(dtype: pa.DataType) -> None:
    assert parse_type(str(dtype)) == dtype


@pytest.mark.parametrize(
    "text",
    [
        "",
        "integer",
        "list<>",
        "list<int64",
        "struct<a int64>",
        "timestamp[hours]",
        "timestamp[us, tz=]",
        "decimal128(10)",
        "decimal128(99, 2)",
        "int64 extra",
        "map<string>",
    ],
)
def test_parse_type_rejects_unknown_forms(text: str) -> None:
    with pytest.raises(ValueError, match="Accepted forms") as info:
        parse_type(text)
    assert repr(text) in str(info.value)
    assert "decimal128(PRECISION, SCALE)" in str(info.value)


def test_accepted_forms_lists_every_required_form() -> None:
    for form in [
        "string",
        "large_string",
        "int32",
        "date32",
        "timestamp[UNIT, tz=ZONE]",
        "list<T>",
        "struct<NAME: T, ...>",
        "decimal128(PRECISION, SCALE)",
    ]:
        assert form in ACCEPTED_FORMS


# ---- the decorator ----


def test_decorated_function_stays_callable_and_typed() -> None:
    @quiver.udf(returns="int64")
    def plus_one(x: pa.Array) -> pa.Array:
        """Add one."""
        return pc.add(x, 1)

    assert plus_one.returns == pa.int64()
    assert plus_one.eval_type == "scalar_arrow"
    assert plus_one(pa.array([1, 2])).to_pylist() == [2, 3]
    assert plus_one.__name__ == "plus_one" and plus_one.__doc__ == "Add one."
    assert "plus_one" in repr(plus_one)


def test_returns_accepts_a_data_type() -> None:
    @quiver.udf(returns=pa.list_(pa.string()))
    def f(x: pa.Array) -> pa.Array:
        return x

    assert f.returns == pa.list_(pa.string())


def test_decorator_called_with_the_function() -> None:
    def f(x: pd.Series) -> pd.Series:
        return x

    wrapped = quiver.udf(f, returns="float64")
    assert wrapped.eval_type == "scalar_pandas" and wrapped.func is f


def test_bad_returns_raise() -> None:
    with pytest.raises(ValueError, match="Accepted forms"):
        quiver.udf(returns="int")
    with pytest.raises(TypeError, match="pyarrow.DataType or a type string"):
        quiver.udf(returns=int)  # type: ignore[arg-type]


# ---- eval type inference ----


def test_arrow_hints_give_scalar_arrow() -> None:
    @quiver.udf(returns="int64")
    def f(a: pa.Array, b: pa.ChunkedArray, c: pa.Int64Array) -> pa.Array:
        return a

    assert f.eval_type == "scalar_arrow"


def test_pandas_hints_give_scalar_pandas() -> None:
    @quiver.udf(returns="float64")
    def f(a: pd.Series, b: pd.Series) -> pd.Series:
        return a + b

    assert f.eval_type == "scalar_pandas"
    assert f(pd.Series([1.0]), pd.Series([2.0])).tolist() == [3.0]


@pytest.mark.parametrize(
    "hint",
    [
        Iterator[tuple[pa.Array, ...]],
        Iterable[tuple[pa.Array]],
        typing.Iterator[tuple[pa.Array, pa.Array]],
        typing.Iterable,
        Iterator,
    ],
)
def test_iterator_hint_gives_scalar_arrow_iter(hint: object) -> None:
    def f(batches):
        for (x,) in batches:
            yield x

    f.__annotations__ = {"batches": hint}
    assert quiver.udf(f, returns="int64").eval_type == "scalar_arrow_iter"


def test_string_annotations_are_resolved() -> None:
    # This module uses `from __future__ import annotations`, so every hint here is a string.
    def f(x: pa.Array) -> pa.Array:
        return x

    assert isinstance(f.__annotations__["x"], str)
    assert quiver.infer_eval_type(f) == "scalar_arrow"


def test_no_hints_raise_and_explain_the_three_forms() -> None:
    with pytest.raises(TypeError, match="no parameter type hints") as info:

        @quiver.udf(returns="int64")
        def f(x):
            return x

    for form in ["scalar_arrow", "scalar_pandas", "scalar_arrow_iter", "eval_type="]:
        assert form in str(info.value)


def test_explicit_eval_type_overrides_inference() -> None:
    @quiver.udf(returns="int64", eval_type="scalar_pandas")
    def f(x):
        return x

    assert f.eval_type == "scalar_pandas"

    @quiver.udf(returns="int64", eval_type="scalar_arrow")
    def g(x: pd.Series):
        return x

    assert g.eval_type == "scalar_arrow"


def test_unknown_eval_type_raises() -> None:
    with pytest.raises(ValueError, match="scalar_arrow, scalar_pandas, scalar_arrow_iter"):
        quiver.udf(returns="int64", eval_type="grouped_map")


def test_mixed_hints_raise() -> None:
    with pytest.raises(TypeError, match="mixes pa.Array and pd.Series"):

        @quiver.udf(returns="int64")
        def f(a: pa.Array, b: pd.Series):
            return a


def test_unusable_hints_raise() -> None:
    with pytest.raises(TypeError, match=r"cannot use \(x: int\)"):

        @quiver.udf(returns="int64")
        def f(x: int):
            return x


def test_iterator_with_more_parameters_raises() -> None:
    with pytest.raises(TypeError, match="exactly one parameter"):

        @quiver.udf(returns="int64")
        def f(batches: Iterator[tuple[pa.Array, ...]], extra: pa.Array):
            yield from ()


def test_unresolvable_hint_raises() -> None:
    def f(x: NotDefinedAnywhere):  # noqa: F821
        return x

    with pytest.raises(TypeError, match="cannot resolve the type hints"):
        quiver.udf(f, returns="int64")


def test_decorating_a_non_callable_raises() -> None:
    with pytest.raises(TypeError, match="decorates functions"):
        quiver.udf(returns="int64")(42)  # type: ignore[arg-type]


def test_version() -> None:
    assert isinstance(quiver.__version__, str) and quiver.__version__.count(".") == 2
