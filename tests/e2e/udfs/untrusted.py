"""pyarrow UDFs that return arrays pyarrow's cheap validation accepts but whose data is broken.

Built with pa.Array.from_buffers, as a UDF that assembles buffers itself (or a worker in another
language) could: only a full validation (offsets, UTF-8) finds what is wrong.
"""

import struct

import pyarrow as pa

import quiver


def _strings(offsets: list[int], values: bytes) -> pa.Array:
    """Return a string array over raw offsets and bytes, without checking either."""
    offset_buffer = pa.py_buffer(struct.pack(f"<{len(offsets)}i", *offsets))
    return pa.Array.from_buffers(
        pa.string(), len(offsets) - 1, [None, offset_buffer, pa.py_buffer(values)]
    )


@quiver.udf(returns="string")
def bad_offsets(x: pa.Array) -> pa.Array:
    """Return offsets that go back and forth; the first and last are in range."""
    rows = len(x)
    values = b"abcdefgh" * rows
    offsets = [0] + [(8 * rows if i % 2 else 1) for i in range(1, rows)] + [8 * rows]
    return _strings(offsets, values)


@quiver.udf(returns="string")
def bad_utf8(x: pa.Array) -> pa.Array:
    """Return well-formed offsets over bytes that are not UTF-8."""
    rows = len(x)
    return _strings([2 * i for i in range(rows + 1)], b"\xff\xfe" * rows)


@quiver.udf(returns="string")
def echo(x: pa.Array) -> pa.Array:
    """Return the argument (what the fake worker of test_mutated_frames computes too)."""
    return x
