"""``quiver.spark.apply`` (a grouped map over ``applyInArrow``) and ``quiver.spark.flat_map``
(a table function over ``mapInArrow``): quiver's other kinds where Spark has their shape."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from quiver.errors import InvalidInput
from quiver.spark.executor import apply_group, map_partition
from quiver.spark.mapping import (
    RuntimeCall,
    check_columns,
    grouped_calls,
    learn_schema,
    require_dataframe,
    ship,
)
from quiver.spark.plan import APPLY, FLAT_MAP, Plan, SessionOptions, declared_runtimes
from quiver.udf_call import UdfCall


def apply(
    grouped: Any,
    fn: UdfCall | RuntimeCall | Callable[..., Any] | str,
    *,
    workers: int = 1,
    runtimes: dict[str, str | Sequence[str]] | None = None,
    ship_runtimes: bool = True,
    transport: str = "uds",
    batch_timeout: float = 60,
    batch_rows: int = 65536,
) -> Any:
    """Run a grouped map over ``df.groupBy(...)``: ``fn`` (``@quiver.grouped_map``) gets all
    rows of one group and returns a table of its declared schema; the result is a Spark
    DataFrame of that schema (``GroupedData.applyInArrow``, one call per group).

    ``grouped`` is ``df.groupBy("k", ...)`` over columns (not expressions); the options are
    :func:`quiver.spark.map`'s. Spark gathers each group in one task, as for
    ``applyInArrow``; quiver's session of that executor process runs ``fn`` on it::

        @quiver.grouped_map(returns="k string, x double, centred double")
        def demean(group: pd.DataFrame) -> pd.DataFrame:
            return group.assign(centred=group.x - group.x.mean())

        quiver.spark.apply(df.groupBy("k"), demean)
    """
    df = getattr(grouped, "_df", None)
    if df is None or not hasattr(grouped, "applyInArrow"):
        raise TypeError(
            "quiver.spark.apply takes df.groupBy(...) (a classic PySpark GroupedData), "
            f"not {type(grouped).__name__}"
        )
    require_dataframe(df, "apply")
    keys = grouping_columns(grouped)
    declared = declared_runtimes(runtimes, ship_runtimes)
    groups = grouped_calls([fn], declared)
    plan = Plan(
        groups=groups,
        select=(),
        runtimes=tuple(declared),
        options=SessionOptions(workers, transport, float(batch_timeout), 4),
        batch_rows=batch_rows,
        output_schema=pa.schema([]),
        kind=APPLY,
        group_by=tuple(keys),
    )
    plan, schema = learn_schema(plan, df)
    ship(plan, df.sparkSession)

    # A function with type hints, not a functools.partial: applyInArrow infers its form from
    # them (a table in, a table out).
    def apply_one(group: pa.Table) -> pa.Table:
        return apply_group(plan, group)

    return grouped.applyInArrow(apply_one, schema)


def flat_map(
    df: Any,
    udtf: UdfCall | RuntimeCall,
    select: Sequence[str] | None = None,
    *,
    workers: int = 1,
    runtimes: dict[str, str | Sequence[str]] | None = None,
    ship_runtimes: bool = True,
    transport: str = "uds",
    batch_timeout: float = 60,
    batch_rows: int = 65536,
    max_in_flight: int = 4,
) -> Any:
    """Run a table function (``@quiver.udtf``) over Spark DataFrame ``df``: zero or more rows
    per input row, each beside the columns of ``select`` (default: all) of the row that made
    it (``Session.flat_map`` in each task, over ``mapInArrow``)::

        quiver.spark.flat_map(df, quiver.call(words, "text"), select=["id"])
    """
    require_dataframe(df, "flat_map")
    declared = declared_runtimes(runtimes, ship_runtimes)
    groups = grouped_calls([udtf], declared)
    kept = list(df.columns) if select is None else list(select)
    check_columns(kept, list(df.columns), groups, results=False)
    plan = Plan(
        groups=groups,
        select=tuple(kept),
        runtimes=tuple(declared),
        options=SessionOptions(workers, transport, float(batch_timeout), max_in_flight),
        batch_rows=batch_rows,
        output_schema=pa.schema([]),
        kind=FLAT_MAP,
    )
    plan, schema = learn_schema(plan, df)
    ship(plan, df.sparkSession)
    return df.mapInArrow(functools.partial(map_partition, plan), schema)


def grouping_columns(grouped: Any) -> list[str]:
    """The column names ``grouped`` groups by; an expression is refused (group by a column
    made with ``df.withColumn`` first)."""
    columns = list(grouped._df.columns)
    expressions = grouped._jgd.groupingExprs()
    names = []
    for i in range(expressions.size()):
        text = expressions.apply(i).sql()
        name = text[1:-1].replace("``", "`") if text.startswith("`") else text
        if name not in columns:
            raise InvalidInput(
                f"quiver.spark.apply groups by columns, and {text} is not one of the "
                f"DataFrame's ({', '.join(columns)}); add it with df.withColumn first"
            )
        names.append(name)
    if not names:
        raise InvalidInput("quiver.spark.apply needs df.groupBy(...) with at least one column")
    return names
