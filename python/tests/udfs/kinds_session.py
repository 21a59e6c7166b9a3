"""UDFs of the grouped and table kinds, for test_session_kinds.py (quiver.Session and
`quiver run` over the same functions)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.grouped_map(returns="k int64, name string, x double, centred double")
def demean(group: pd.DataFrame) -> pd.DataFrame:
    """Every row of the group with x minus the group's mean (pandas flavour)."""
    return group[["k", "name", "x"]].assign(centred=group["x"] - group["x"].mean())


@quiver.grouped_map(returns="k int64")
def explode_on_three(group: pa.Table) -> pa.Table:
    """Raises on the group of key 3 (Arrow flavour)."""
    if group["k"][0].as_py() == 3:
        raise ValueError("no threes")
    return group.select(["k"]).slice(0, 1)


@quiver.udaf(returns="float64")
def spread(x: pa.Array) -> float:
    """The largest value minus the smallest (simple form, Arrow)."""
    return pc.max(x).as_py() - pc.min(x).as_py()


@quiver.udaf(returns="int64")
def count(x: pd.Series) -> int:
    """The number of non-null values (simple form, pandas)."""
    return int(x.count())


@quiver.udaf(returns="float64")
class Mean:
    """The mean in partial form: (sum, count) states merge associatively."""

    def init(self):
        return (0.0, 0)

    def update(self, state, x: pa.Array):
        return (state[0] + (pc.sum(x).as_py() or 0.0), state[1] + len(x) - x.null_count)

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])

    def finish(self, state):
        return state[0] / state[1] if state[1] else None


@quiver.udaf(returns="float64")
class MeanOfMeans:
    """A merge that is not associative: the mean of two states' means, whatever their sizes."""

    def init(self):
        return None

    def update(self, state, x: pa.Array):
        return pc.mean(x).as_py()

    def merge(self, a, b):
        return (a + b) / 2

    def finish(self, state):
        return state


@quiver.udtf(returns="struct<word: string, position: int32>")
def words(text: str):
    """One row per word of the text; none for an empty or null text (generator form)."""
    for position, word in enumerate((text or "").split()):
        yield word, position


@quiver.udtf(returns="struct<v: int64>")
def index_out_of_range(n: pa.Array):
    """Claims an output row of input row len(n), one past the end of the batch."""
    return {"v": [1]}, [len(n)]


@quiver.udaf(returns="int64", requirements=["quiverdemo==9.9"])
def unavailable(x: pa.Array) -> int:
    """Needs a package version no index has."""
    return len(x)


@quiver.udf(returns="float64")
def same(x: pa.Array) -> pa.Array:
    """A scalar UDF, run on the same session as the kinds."""
    return x
