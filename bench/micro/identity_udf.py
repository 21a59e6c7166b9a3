"""The UDF of quiver_bench_roundtrip: the string column back, as it came (pa.Array)."""

import pyarrow as pa

import quiver


@quiver.udf(returns="string")
def identity(data: pa.Array) -> pa.Array:
    """Return the batch's strings unchanged."""
    return data
