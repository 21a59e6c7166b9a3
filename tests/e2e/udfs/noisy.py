"""A UDF that writes a lot to stdout and stderr while it computes."""

import sys

import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.udf(returns="int64")
def chatty(x: pa.Array) -> pa.Array:
    for i in range(500):
        print(f"stdout line {i} of a chatty UDF " + "x" * 100)
        print(f"stderr line {i} of a chatty UDF " + "y" * 100, file=sys.stderr)
    sys.stdout.write("no newline at the end")
    return pc.multiply(x, 2)
