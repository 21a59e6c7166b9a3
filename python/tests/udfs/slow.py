"""A UDF that takes long enough to be interrupted."""

import time

import pyarrow as pa

import quiver


@quiver.udf(returns="int64")
def sleepy(x: pa.Array) -> pa.Array:
    print("sleepy: started", flush=True)
    time.sleep(30)
    return x
