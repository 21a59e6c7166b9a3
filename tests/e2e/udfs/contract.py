"""UDFs of the type contract's end-to-end rows (docs/types.md)."""

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.udf(returns="string")
def upper(x: pa.Array) -> pa.Array:
    """Upper-case strings: pc.utf8_upper has no kernel for dictionaries or views."""
    return pc.utf8_upper(x)


@quiver.udf(returns="string", decode=False)
def arrived_type(x: pa.Array) -> pa.Array:
    """Tell, on every row, the Arrow type the worker received the argument as."""
    return pa.array([str(x.type)] * len(x), pa.string())


@quiver.udf(returns="int64")
def exact_plus_one(x: pd.Series) -> pd.Series:
    """Add one under pandas: exact above 2**53 because nulls arrive as pd.NA in Int64."""
    return x + 1


@quiver.udf(returns="int32")
def times_million(x: pa.Array) -> pa.Array:
    """Overflow int32 for large inputs: the worker refuses, naming the row and the value."""
    return pc.multiply(x, 1_000_000)


def _identity(returns: str):
    @quiver.udf(returns=returns)
    def identity(x: pa.Array) -> pa.Array:
        return x

    return identity


identity_ts_tz = _identity("timestamp[us, tz=Asia/Tokyo]")
identity_ts = _identity("timestamp[ms]")
identity_decimal = _identity("decimal128(20, 3)")
identity_large_string = _identity("large_string")
identity_large_binary = _identity("large_binary")
identity_string = _identity("string")
identity_list = _identity("list<int64>")
identity_struct = _identity("struct<a: int64, b: string>")
identity_map = _identity("map<string, int64>")
identity_date = _identity("date32")
