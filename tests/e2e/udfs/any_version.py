"""UDFs that need no environment of their own (or get one from --requirements)."""

import sys

import pyarrow as pa

import quiver


@quiver.udf(returns="string")
def demo_version(value: pa.Array) -> pa.Array:
    """quiverdemo's version where this worker runs, or 'none'."""
    try:
        import quiverdemo
    except ImportError:
        version = "none"
    else:
        version = quiverdemo.VERSION
    return pa.array([version] * len(value), pa.string())


@quiver.udf(returns="string")
def interpreter(value: pa.Array) -> pa.Array:
    """The prefix of the interpreter that runs this worker."""
    return pa.array([sys.prefix] * len(value), pa.string())
