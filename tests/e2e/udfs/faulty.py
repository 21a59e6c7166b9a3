"""UDFs that fail in every way quiver must report (each counts the batches it saw)."""

import os
import signal
import sys
import time

import pyarrow as pa

import quiver

_batches = 0


def _next_batch() -> int:
    global _batches
    _batches += 1
    return _batches


def _explode(values: pa.Array) -> None:
    raise ValueError(f"boom on purpose after {len(values)} values")


@quiver.udf(returns="int64")
def explode(x: pa.Array) -> pa.Array:
    if _next_batch() == 2:
        _explode(x)
    return x


@quiver.udf(returns="int64")
def wrong_length(x: pa.Array) -> pa.Array:
    return x.slice(1) if _next_batch() == 2 else x


@quiver.udf(returns="int64")
def wrong_type(x: pa.Array) -> pa.Array:
    return pa.array(["not a number"] * len(x)) if _next_batch() == 2 else x


@quiver.udf(returns="int64")
def exit_sys(x: pa.Array) -> pa.Array:
    if _next_batch() == 2:
        sys.exit(0)
    return x


@quiver.udf(returns="int64")
def exit_os(x: pa.Array) -> pa.Array:
    if _next_batch() == 2:
        sys.stdout.flush()
        os._exit(0)
    return x


@quiver.udf(returns="int64")
def kill_self(x: pa.Array) -> pa.Array:
    if _next_batch() == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


@quiver.udf(returns="int64")
def hang(x: pa.Array) -> pa.Array:
    if _next_batch() == 2:
        time.sleep(600)
    return x


@quiver.udf(returns="int64")
def slow(x: pa.Array) -> pa.Array:
    time.sleep(0.05)
    return x
