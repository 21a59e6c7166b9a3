"""UDFs of the grouped and table kinds, for tests/e2e/test_kinds_runs.py."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.grouped_map(returns="k int64, n int64, total double, first string")
def summarise(group: pd.DataFrame) -> pd.DataFrame:
    """One row per group, pandas flavour."""
    return pd.DataFrame(
        {
            "k": [group["k"].iloc[0]],
            "n": [len(group)],
            "total": [group["x"].sum()],
            "first": [group["name"].iloc[0]],
        }
    )


@quiver.grouped_map(returns="k int64, x double, rank int32")
def ranked(group: pa.Table) -> pa.Table:
    """Every row of the group with its rank by x (ties in input order), Arrow flavour."""
    order = pc.sort_indices(group, sort_keys=[("x", "ascending")])
    ranks = pa.array(range(1, group.num_rows + 1), pa.int32())
    sorted_group = group.take(order)
    return pa.table({"k": sorted_group["k"], "x": sorted_group["x"], "rank": ranks})


@quiver.grouped_map(returns="k int64, missing double")
def wrong_columns(group: pd.DataFrame) -> pd.DataFrame:
    """Returns a frame without the declared column 'missing'."""
    return group[["k"]]


@quiver.grouped_map(returns="k int64")
def explode_on_seven(group: pd.DataFrame) -> pd.DataFrame:
    """Raises on the group of key 7."""
    if group["k"].iloc[0] == 7:
        raise ValueError("no sevens")
    return group[["k"]].head(1)


_hoard: list[bytes] = []


@quiver.grouped_map(returns="k int64")
def hoard_per_group(group: pa.Table) -> pa.Table:
    """Keep 64 MiB more (touched) per group: a worker that outgrows any --worker-memory."""
    _hoard.append(b"m" * (64 << 20))
    return group.select(["k"]).slice(0, 1)


@quiver.grouped_map(returns="k int64, parent int64")
def parent_pid(group: pa.Table) -> pa.Table:
    """The worker's parent process: the engine, or the fork server that forked it."""
    return pa.table({"k": group["k"].slice(0, 1), "parent": pa.array([os.getppid()], pa.int64())})


@quiver.udaf(returns="float64")
def robust_mean(x: pd.Series) -> float:
    """The mean without the smallest and largest value (simple form, pandas)."""
    values = x.sort_values()
    return float(values.iloc[1:-1].mean()) if len(values) > 2 else float(values.mean())


@quiver.udaf(returns="int64")
def count_arrow(x: pa.Array) -> int:
    """The number of non-null values (simple form, Arrow)."""
    return len(x) - x.null_count


@quiver.udaf(returns="float64")
class Mean:
    """The mean, in partial form: (sum, count) states merge associatively."""

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
    """A non-associative merge: the mean of two states' means, whatever their sizes."""

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
    """One row per word of the text; none for an empty or null text."""
    for position, word in enumerate((text or "").split()):
        yield word, position


@quiver.udtf(returns="struct<copy: int64>")
def repeat(n: pa.Array):
    """Batch form: input row i repeated n[i] times."""
    counts = [v or 0 for v in n.to_pylist()]
    index = [i for i, count in enumerate(counts) for _ in range(count)]
    return {"copy": [c for count in counts for c in range(count)]}, index


@quiver.udtf(returns="struct<v: int64>")
def index_out_of_range(n: pa.Array):
    """Claims an output row of input row len(n) (one past the end)."""
    return {"v": [1]}, [len(n)]


@quiver.udtf(returns="struct<v: int64>")
def index_backwards(n: pa.Array):
    """Output rows whose input rows go backwards."""
    return {"v": [1, 2]}, [1, 0]
