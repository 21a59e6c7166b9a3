"""Example UDFs for `quiver run` (see scripts/run-example.sh).

quiver picks how to call each UDF from its parameter type hints: ``pd.Series`` parameters make a
pandas UDF, ``pa.Array`` parameters an Arrow UDF. ``returns=`` is the Arrow type of the result.

    quiver run examples/data/people.parquet \\
        --udf 'loud=examples/udfs.py:shout(name)' \\
        --udf 'gross=examples/udfs.py:price_with_tax(value)' \\
        -o examples/data/people_out.parquet
"""

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import quiver

TAX_RATE = 0.2


@quiver.udf(returns="string")
def shout(name: pd.Series) -> pd.Series:
    """Upper-case a name and add an exclamation mark (a pandas UDF)."""
    return name.str.upper() + "!"


@quiver.udf(returns="float64")
def price_with_tax(value: pa.Array) -> pa.Array:
    """Add the tax to a price, rounded to cents (an Arrow UDF: no conversion to pandas)."""
    return pc.round(pc.multiply(value, 1 + TAX_RATE), 2)
