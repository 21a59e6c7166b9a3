"""UDFs that use a lot of memory: to hit a worker's cap, and results far larger than input."""

import pyarrow as pa

import quiver

_hoard = []


@quiver.udf(returns="int64")
def hoard(x: pa.Array) -> pa.Array:
    """Keep 64 MiB more (touched, not merely reserved) on every batch."""
    _hoard.append(b"m" * (64 << 20))
    return x


@quiver.udf(returns="string")
def blow_up(x: pa.Array) -> pa.Array:
    """Return about 3 KiB per row: 200 MB of strings for a 64k-row batch."""
    text = "z" * 3200
    return pa.array([text] * len(x), pa.string())
