"""A UDF whose result is just over the 2 GiB one message may carry, without using 2 GiB of memory.

Its one value per batch is a buffer that is allocated but never written: the kernel maps its
pages only when they are written, so the worker stays small while the result's size is real.
"""

import pyarrow as pa

import quiver

SIZE = 2**31 + 4096


@quiver.udf(returns="large_binary")
def huge(x: pa.Array) -> pa.Array:
    """Return one value of SIZE bytes for the batch (of one row)."""
    data = pa.allocate_buffer(SIZE)
    offsets = pa.array([0, SIZE], pa.int64()).buffers()[1]
    return pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, data])
