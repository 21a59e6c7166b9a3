"""UDFs the UdfOperator tests run in real worker processes."""

import os
import signal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.udf(returns="string")
def identity_text(values: pa.Array) -> pa.Array:
    return values


@quiver.udf(returns="int64")
def plus_one(values: pa.Array) -> pa.Array:
    return pc.add(values.cast(pa.int64()), 1)


@quiver.udf(returns="string")
def shout(values: pd.Series) -> pd.Series:
    return values.str.upper() + "!"


@quiver.udf(returns="int64")
def fails_on_seven(values: pa.Array) -> pa.Array:
    if pc.any(pc.equal(values, 7)).as_py():
        raise ValueError("seven is not allowed")
    return values.cast(pa.int64())


@quiver.udf(returns="int64")
def kills_itself(values: pa.Array) -> pa.Array:
    os.kill(os.getpid(), signal.SIGKILL)
    return values


@quiver.udf(returns="int64")
def process_id(values: pa.Array) -> pa.Array:
    return pa.array([os.getpid()] * len(values), pa.int64())
