"""UDFs for the quiver.Session tests: well-behaved ones and ones that fail in each way."""

import os
import signal
import time

import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.udf(returns="string")
def shout(s: pa.Array) -> pa.Array:
    # Polars exports strings as string_view, which utf8_upper has no kernel for.
    return pc.utf8_upper(s.cast(pa.string()))


@quiver.udf(returns="int64")
def add(x: pa.Array, y: pa.Array) -> pa.Array:
    return pc.add(x, y)


@quiver.udf(returns="int64")
def fail_on_negative(x: pa.Array) -> pa.Array:
    if pc.any(pc.less(x, 0)).as_py():
        raise ValueError("negative input")
    return x


@quiver.udf(returns="int64")
def kill_self(x: pa.Array) -> pa.Array:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


@quiver.udf(returns="int64")
def sleepy(x: pa.Array) -> pa.Array:
    time.sleep(float(os.environ.get("QUIVER_TEST_SLEEP", "30")))
    return x


@quiver.udf(returns="int64")
def pid(x: pa.Array) -> pa.Array:
    return pa.array([os.getpid()] * len(x), pa.int64())


@quiver.udf(returns="int64")
def buffer_bytes(values: pa.Array) -> pa.Array:
    """Each row: the bytes of every buffer of the batch's argument column, as received."""
    received = sum(buffer.size for buffer in values.buffers() if buffer is not None)
    return pa.array([received] * len(values), pa.int64())


@quiver.udf(returns="int64")
def garble_and_exit(x: pa.Array) -> pa.Array:
    """Print bytes that are not UTF-8 to stderr, then end the worker process."""
    import os

    os.write(2, b"last words \xff\xfe\xc3(\n")
    os._exit(3)
