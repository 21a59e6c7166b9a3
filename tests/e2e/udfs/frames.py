"""pandas UDFs for the end-to-end tests."""

import pandas as pd

import quiver


@quiver.udf(returns="string")
def shout(name: pd.Series) -> pd.Series:
    return name.str.upper() + "!"


@quiver.udf(returns="float64")
def with_tax(value: pd.Series) -> pd.Series:
    return value * 1.2


@quiver.udf(returns="int64")
def total(a: pd.Series, b: pd.Series) -> pd.Series:
    return a + b
