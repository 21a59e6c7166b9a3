"""Well-behaved Arrow UDFs for the worker tests (pandas ones are in series.py)."""

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.udf(returns="int64")
def identity(x: pa.Array) -> pa.Array:
    return x


@quiver.udf(returns="int64")
def add(x: pa.Array, y: pa.Array) -> pa.Array:
    return pc.add(x, y)


@quiver.udf(returns="string")
def shout(s: pa.Array) -> pa.Array:
    return pc.utf8_upper(s)


@quiver.udf(returns="int64")
def offset_iter(batches: Iterator[tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
    offset = 100  # stands for expensive one-time setup, such as loading a model
    for (x,) in batches:
        yield pc.add(x, offset)
    print("offset_iter: teardown ran")  # runs at Finish, after the last batch


@quiver.udf(returns="int64", eval_type="scalar_arrow")
def as_chunks(x):
    return pa.chunked_array([x.slice(0, 1), x.slice(1)], type=x.type)


@quiver.udf(returns="int64")
def as_numpy(x: pa.Array):
    return x.fill_null(0).to_numpy() * 3


def undecorated_double(x):
    return pc.multiply(x, 2)


@quiver.udf(returns="string")
def plain_string(s: pa.Array) -> pa.Array:
    return s.cast(pa.string())
