"""UDFs of the transport conformance suite, run in real worker processes."""

import os
import signal
import time

import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.udf(returns="string")
def identity(values: pa.Array) -> pa.Array:
    return values


@quiver.udf(returns="int64")
def length(values: pa.Array) -> pa.Array:
    return pc.utf8_length(values).cast(pa.int64())


@quiver.udf(returns="string")
def fails(values: pa.Array) -> pa.Array:
    raise RuntimeError("conformance failure")


@quiver.udf(returns="string")
def slow_identity(values: pa.Array) -> pa.Array:
    time.sleep(0.05)
    return values


@quiver.udf(returns="string")
def dies(values: pa.Array) -> pa.Array:
    os.kill(os.getpid(), signal.SIGKILL)
    return values


@quiver.udf(returns="string")
def short_result(values: pa.Array) -> pa.Array:
    return values[1:]


@quiver.udf(returns="string")
def hangs(values: pa.Array) -> pa.Array:
    time.sleep(60)
    return values
