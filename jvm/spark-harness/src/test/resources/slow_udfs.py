"""A UDF that is still running when the JVM harness kills its worker (python/ref payload)."""

import time

import pyarrow as pa


def sleep_then_identity(values: pa.Array) -> pa.Array:
    """Return the argument after 30 s: long enough to be killed in the middle of it."""
    time.sleep(30)
    return values


def pause_then_identity(values: pa.Array) -> pa.Array:
    """Return the argument after 0.5 s: long enough for a Cancel to arrive behind the batch."""
    time.sleep(0.5)
    return values
