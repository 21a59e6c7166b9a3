"""UDFs whose metrics are known: a fixed sleep per batch, a counter with a known sum."""

import time

import pyarrow as pa
import pyarrow.compute as pc

import quiver

SLEEP_SECONDS = 0.05


@quiver.udf(returns="int64")
def sleepy(x: pa.Array) -> pa.Array:
    """Sleep SLEEP_SECONDS per batch, then return x."""
    time.sleep(SLEEP_SECONDS)
    return x


@quiver.udf(returns="int64")
def skip_multiples_of_three(x: pa.Array) -> pa.Array:
    """Null every multiple of 3, counting them in the counter rows_skipped."""
    multiple = pc.equal(pc.remainder(x, 3), 0)
    quiver.metrics.counter("rows_skipped").add(pc.sum(multiple).as_py() or 0)
    quiver.metrics.counter("batches_seen").add(1)
    return pc.if_else(multiple, pa.scalar(None, pa.int64()), x)


@quiver.udf(returns="int64")
def badly_named_counter(x: pa.Array) -> pa.Array:
    """Use a counter whose name is not a metric name."""
    quiver.metrics.counter("rows skipped").add(1)
    return x


BAD_VALUE = 4242


@quiver.udf(returns="int64")
def fails_on_one_row(x: pa.Array) -> pa.Array:
    """Raise on the row holding BAD_VALUE, with that row in a local variable."""
    out = []
    for row, value in enumerate(x.to_pylist()):
        if value == BAD_VALUE:
            raise ValueError(f"cannot take this value (row {row} of the batch)")
        out.append(value)
    return pa.array(out, type=pa.int64())


def _forge(name: str, value: int) -> None:
    """Put a counter past quiver.metrics' checks, as a hostile UDF can."""
    quiver.metrics._totals[name] = value


@quiver.udf(returns="int64")
def forged_counter_name(x: pa.Array) -> pa.Array:
    """Report a counter whose name is not a metric name."""
    _forge("rows skipped", 1)
    return x


@quiver.udf(returns="int64")
def forged_counter_value(x: pa.Array) -> pa.Array:
    """Report a counter beyond int64."""
    _forge("huge", 2**64 - 1)
    return x
