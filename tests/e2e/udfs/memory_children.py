"""A UDF whose memory is held by a child process it starts, not by its worker."""

import subprocess
import sys
import time

import pyarrow as pa

import quiver

_children = []


@quiver.udf(returns="int64")
def child_hoards(x: pa.Array) -> pa.Array:
    """Start (once) a child that holds 800 MB, touched; wait until it holds it."""
    if not _children:
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys,time; b = b'm' * (800 << 20); print(1, flush=True);"
             " time.sleep(60)"],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        child.stdout.readline()
        _children.append(child)
        time.sleep(0.5)  # the engine polls every 20 ms
    return x
