"""UDFs whose environments hold different versions of quiverdemo (a wheel the tests build).

The file imports quiverdemo at the top: only the UDFs' environments have it, and quiver reads
the requirements without importing the file.
"""

import pyarrow as pa
import quiverdemo

import quiver


@quiver.udf(returns="string", requirements=["quiverdemo<2"])
def old_version(value: pa.Array) -> pa.Array:
    """quiverdemo's version in this UDF's environment, per row."""
    return pa.array([quiverdemo.VERSION] * len(value), pa.string())


@quiver.udf(returns="string", requirements=["quiverdemo==2.0"])
def new_version(value: pa.Array) -> pa.Array:
    """quiverdemo's version in this UDF's environment, per row."""
    return pa.array([quiverdemo.VERSION] * len(value), pa.string())


@quiver.udf(returns="string", requirements=["quiver-no-such-package-xyz==1.0"])
def missing(value: pa.Array) -> pa.Array:
    """Never runs: its requirement does not exist."""
    return pa.array(["?"] * len(value), pa.string())
