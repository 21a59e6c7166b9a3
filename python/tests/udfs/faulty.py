"""UDFs that fail in the ways the worker must report."""

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

import quiver


def _divide(x):
    return 1 // 0


@quiver.udf(returns="int64")
def divide_by_zero(x: pa.Array) -> pa.Array:
    return _divide(x)


@quiver.udf(returns="int64")
def fail_on_negative(x: pa.Array) -> pa.Array:
    if pc.any(pc.less(x, 0)).as_py():
        raise ValueError("negative input")
    return x


@quiver.udf(returns="int64")
def too_short(x: pa.Array) -> pa.Array:
    return x.slice(1)


@quiver.udf(returns="int64")
def wrong_type(x: pa.Array) -> pa.Array:
    # A string is not converted to a number (an int32 would be: no value changes).
    return pc.cast(x, pa.string())


@quiver.udf(returns="int64")
def reads_ahead(batches: Iterator[tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
    for (x,) in batches:
        next(batches)
        yield x


@quiver.udf(returns="int64")
def yields_extra(batches: Iterator[tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
    for (x,) in batches:
        yield x
    yield pa.array([], type=pa.int64())


def no_return_type(x):
    return x
