"""A UDF that takes long enough to be interrupted, on the batch that holds a negative number."""

import time

import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.udf(returns="int64")
def sleep_on_negative(x: pa.Array) -> pa.Array:
    if pc.any(pc.less(x, 0)).as_py():
        print("sleep_on_negative: started", flush=True)
        time.sleep(30)
    return x
