"""UDFs of the quiver.spark tests, referenced as "tests/spark/spark_job_udfs.py:NAME": the file
is at the same path on the driver and on every executor of the test cluster (one machine).
Its name is its own: other suites import a module called `udfs`, and pytest puts this folder on
sys.path, which quiver.Session hands to its workers."""

import os
import time

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.udf(returns="string")
def shout(name: pd.Series) -> pd.Series:
    return name.str.upper() + "!"


@quiver.udf(returns="float64")
def inverse(value: pa.Array) -> pa.Array:
    if pc.any(pc.equal(value, 0.0)).as_py():
        raise ZeroDivisionError("a value is 0")
    return pc.divide(1.0, value)


@quiver.udf(returns="int64")
def worker_pid(x: pa.Array) -> pa.Array:
    """The pid of the quiver worker that ran the batch."""
    return pa.array([os.getpid()] * len(x), pa.int64())


@quiver.udf(returns="int64")
def executor_pid(x: pa.Array) -> pa.Array:
    """The pid of the process holding the session: the executor's Python worker."""
    return pa.array([os.getppid()] * len(x), pa.int64())


@quiver.udf(returns="float64")
def slow(value: pa.Array) -> pa.Array:
    time.sleep(30)
    return value


@quiver.udf(returns="uint64")
def unsigned(x: pa.Array) -> pa.Array:
    return pc.cast(x, pa.uint64())


@quiver.udf(returns="string")
def quiver_location(x: pa.Array) -> pa.Array:
    """Where the quiver worker imported quiver from."""
    return pa.array([os.path.dirname(quiver.__file__)] * len(x))


@quiver.grouped_map(returns="k string, x double, centred double")
def demean(group: pd.DataFrame) -> pd.DataFrame:
    return group.assign(centred=group.x - group.x.mean())


@quiver.udtf(returns="struct<word: string, position: int32>")
def words(text: str):
    for position, word in enumerate((text or "").split()):
        yield word, position


class Busy(Exception):
    """Stands for a service's "come back later" (an HTTP 429)."""


_asked: set[int] = set()  # per worker: the ids asked for once already


@quiver.udf(
    returns="int64",
    max_concurrency=16,
    retries=quiver.Retry(max_attempts=2, initial=0.001, on=(Busy,)),
    on_error="null",
)
async def twice_when_ready(id: int) -> int:
    """2 x id, after a wait; busy the first time for ids divisible by 3 (a retry answers), and
    no answer for ids divisible by 7 (the row is null with its error)."""
    import asyncio

    await asyncio.sleep(0.005)
    if id % 7 == 0:
        raise LookupError(f"no answer for id {id}")
    if id % 3 == 0 and id not in _asked:
        _asked.add(id)
        raise Busy(f"busy for id {id}")
    return 2 * id
