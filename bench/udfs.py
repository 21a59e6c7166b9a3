"""The UDF bodies every peer of the end-to-end benchmark runs (bench/run.py).

quiver calls them through `quiver run --udf`; Spark wraps their functions in `pandas_udf`;
DuckDB and Polars call them on each batch converted to pandas, as the others do.
"""

from __future__ import annotations

import pandas as pd

import quiver


@quiver.udf(returns="string")
def identity(data: pd.Series) -> pd.Series:
    """Return the strings unchanged ("string identity")."""
    return data


@quiver.udf(returns="string")
def concat(name: pd.Series, data: pd.Series) -> pd.Series:
    """Return `name + data` ("string concat")."""
    return name + data
