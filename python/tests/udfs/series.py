"""Well-behaved pandas UDFs (kept apart so that the Arrow-only tests skip importing pandas)."""

import pandas as pd

import quiver


@quiver.udf(returns="float64")
def scale(x: pd.Series) -> pd.Series:
    return x * 1.5


@quiver.udf(returns="string")
def describe(x: pd.Series, s: pd.Series) -> pd.Series:
    return s.fillna("?") + "=" + x.astype("Int64").astype(str)
