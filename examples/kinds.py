"""Example UDFs of the grouped and table kinds, over examples/data/people.parquet.

    python examples/make_example_data.py      # writes examples/data/people.parquet
    quiver run examples/data/people.parquet --group-by city \\
        --apply examples/kinds.py:top_three -o top.parquet              # grouped map
    quiver run examples/data/people.parquet --group-by city \\
        --agg 'typical=examples/kinds.py:trimmed_mean(value)' \\
        -o typical.parquet                                               # simple UDAF
    quiver run examples/data/people.parquet --group-by city --workers 2 \\
        --agg 'mean=examples/kinds.py:Mean(value)' -o mean.parquet       # partial UDAF
    quiver run examples/data/people.parquet --select id \\
        --udtf 'part=examples/kinds.py:name_parts(name)' -o parts.parquet  # table function
"""

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.grouped_map(returns="city string, name string, value double, rank int64")
def top_three(people: pd.DataFrame) -> pd.DataFrame:
    """The three highest values of a city, ranked (gets all rows of one city)."""
    top = people.nlargest(3, "value")[["city", "name", "value"]]
    return top.assign(rank=range(1, len(top) + 1))


@quiver.udaf(returns="float64")
def trimmed_mean(value: pd.Series) -> float:
    """The mean of a group's values without the lowest and highest 10%."""
    low, high = value.quantile([0.1, 0.9])
    return float(value[(value >= low) & (value <= high)].mean())


@quiver.udaf(returns="float64")
class Mean:
    """The mean in partial form: workers make (sum, count) states, the engine merges them."""

    def init(self):
        return (0.0, 0)

    def update(self, state, value: pa.Array):
        return (state[0] + pc.sum(value).as_py(), state[1] + len(value) - value.null_count)

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])  # associative: any worker count gives one answer

    def finish(self, state):
        return state[0] / state[1]


@quiver.udtf(returns="struct<part: string, position: int32>")
def name_parts(name: str):
    """One output row per word of a name (a generator, called once per input row)."""
    for position, part in enumerate((name or "").split()):
        yield part, position
