"""A UDF that reports what its worker process sees."""

import os

import pyarrow as pa

import quiver


@quiver.udf(returns="string")
def blas_threads(values: pa.Array) -> pa.Array:
    """Return OPENBLAS_NUM_THREADS as the worker saw it, once per row."""
    return pa.array([os.environ.get("OPENBLAS_NUM_THREADS")] * len(values), pa.string())
