"""Arrow UDFs over every column type the end-to-end tests cover."""

import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.udf(returns="string")
def describe(x: pa.Array) -> pa.Array:
    """Render each value with repr (nulls stay null): works on any type."""
    return pa.array([None if v is None else repr(v) for v in x.to_pylist()], type=pa.string())


def _identity(returns: str):
    @quiver.udf(returns=returns)
    def identity(x: pa.Array) -> pa.Array:
        return x

    return identity


def _plus_one(returns: str):
    @quiver.udf(returns=returns)
    def plus_one(x: pa.Array) -> pa.Array:
        return pc.add(x, pa.scalar(1, type=x.type))

    return plus_one


identity_int32 = _identity("int32")
identity_int64 = _identity("int64")
identity_float64 = _identity("float64")
identity_string = _identity("string")
identity_large_string = _identity("large_string")
identity_list = _identity("list<int64>")
identity_struct = _identity("struct<a: int64, b: string>")
identity_timestamp = _identity("timestamp[us, tz=Europe/Paris]")
identity_decimal = _identity("decimal128(10, 2)")

plus_one_int32 = _plus_one("int32")
plus_one_int64 = _plus_one("int64")
plus_one_float64 = _plus_one("float64")


@quiver.udf(returns="string")
def shout(x: pa.Array) -> pa.Array:
    return pc.utf8_upper(x)


@quiver.udf(returns="large_string")
def shout_large(x: pa.Array) -> pa.Array:
    return pc.utf8_upper(x)


@quiver.udf(returns="int32")
def list_length(x: pa.Array) -> pa.Array:
    return pc.list_value_length(x)


@quiver.udf(returns="int64")
def struct_a(x: pa.Array) -> pa.Array:
    return pc.struct_field(x, [0])


@quiver.udf(returns="int64")
def local_hour(x: pa.Array) -> pa.Array:
    return pc.hour(x)


@quiver.udf(returns="decimal128(11, 2)")
def decimal_double(x: pa.Array) -> pa.Array:
    return pc.add(x, x)


@quiver.udf(returns="string")
def decode_upper(x: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(x.type):
        x = x.dictionary_decode()
    return pc.utf8_upper(x)


@quiver.udf(returns="string")
def join_dash(a: pa.Array, b: pa.Array, c: pa.Array) -> pa.Array:
    """Join three arguments (column, computed, literal) to show what arrived."""
    return pc.binary_join_element_wise(
        a.cast(pa.string()), b.cast(pa.string()), c.cast(pa.string()), "-"
    )
