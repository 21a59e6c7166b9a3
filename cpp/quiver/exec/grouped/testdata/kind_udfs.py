"""The grouped and table kinds the exec/grouped tests run in real Python workers."""

import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.grouped_map(returns="k int64, n int64, total int64")
def totals(group: pa.Table) -> pa.Table:
    values = group.column("v")
    return pa.table(
        {"k": [group.column("k")[0].as_py()], "n": [len(values)], "total": [pc.sum(values).as_py()]}
    )


@quiver.udaf(returns="int64")
def count(v: pa.Array) -> int:
    return len(v)


@quiver.udaf(returns="int64")
class Sum:
    def init(self):
        return 0

    def update(self, state, v: pa.Array):
        return state + (pc.sum(v).as_py() or 0)

    def merge(self, a, b):
        return a + b

    def finish(self, state):
        return state


@quiver.udaf(returns="int64")
def fails_on_seven(v: pa.Array) -> int:
    if 7 in v.to_pylist():
        raise ValueError("seven")
    return len(v)


@quiver.udtf(returns="struct<copy: int64>")
def repeat(n: pa.Array):
    """Input row i repeated n[i] times."""
    counts = [v or 0 for v in n.to_pylist()]
    index = [i for i, count in enumerate(counts) for _ in range(count)]
    return {"copy": [c for count in counts for c in range(count)]}, index
