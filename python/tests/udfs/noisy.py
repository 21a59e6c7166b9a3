"""A UDF that writes a lot to stdout and stderr while it computes."""

import os
import sys

import pyarrow as pa

import quiver


@quiver.udf(returns="int64")
def chatty(x: pa.Array) -> pa.Array:
    for i in range(2000):
        print(f"stdout line {i} " + "x" * 80)
        print(f"stderr line {i} " + "y" * 80, file=sys.stderr)
    os.write(1, b"raw write to fd 1\n")
    return x
