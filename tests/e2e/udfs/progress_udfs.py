"""UDFs for the live view and the CPU figures: one that takes its time, one that burns CPU."""

import time

import pyarrow as pa

import quiver


@quiver.udf(returns="int64")
def sleepy_identity(x: pa.Array) -> pa.Array:
    time.sleep(0.2)
    return x


@quiver.udf(returns="int64")
def burn_cpu(x: pa.Array) -> pa.Array:
    """Spin for 0.3 s of this process's CPU time (not wall time) per call."""
    start = time.process_time()
    while time.process_time() - start < 0.3:
        pass
    return x


@quiver.grouped_map(returns="k int64, x int64")
def sleepy_group(group: pa.Table) -> pa.Table:
    time.sleep(0.2)
    return group
