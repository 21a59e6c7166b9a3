"""The functions ``quiver conformance`` calls on a Python worker (payload ``python/ref``).

Every worker under the conformance kit offers the same four functions (docs/protocol.md,
"Testing your worker"); the kit names these as ``quiver.conformance_udfs:NAME``. The first three
are not decorated: the kit declares their return type in ``Init``, which is how one Python
function serves every argument type.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

import quiver


def identity(values: pa.Array) -> pa.Array:
    """Return the argument unchanged (any type)."""
    return values


def upper(values: pa.Array) -> pa.Array:
    """Return the strings in upper case."""
    return pc.utf8_upper(values)


def add_one(values: pa.Array) -> pa.Array:
    """Return x + 1 for int64 and float64 columns, keeping the type."""
    return pc.add(values, pa.scalar(1, values.type))


@quiver.udf(returns="int64")
def raise_error(values: pa.Array) -> pa.Array:
    """Fail on every batch, to show how a UDF error reaches the engine."""
    raise ValueError("raise_error always fails")
