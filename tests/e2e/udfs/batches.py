"""UDFs that report the batches the worker received, one value per row."""

import pyarrow as pa

import quiver


@quiver.udf(returns="int64")
def batch_rows(x: pa.Array) -> pa.Array:
    """The number of rows of the batch this row came in."""
    return pa.array([len(x)] * len(x), type=pa.int64())


@quiver.udf(returns="int64")
def batch_bytes(x: pa.Array) -> pa.Array:
    """The Arrow buffer bytes of the argument column of the batch this row came in."""
    return pa.array([x.nbytes] * len(x), type=pa.int64())
