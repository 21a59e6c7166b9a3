"""``quiver.spark.map``: quiver UDFs over a Spark DataFrame, through ``mapInArrow``."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from quiver.errors import InvalidInput
from quiver.spark import spark_types
from quiver.spark.executor import map_partition, run_plan
from quiver.spark.plan import PYTHON, Plan, Runtime, SessionOptions, declared_runtimes
from quiver.udf_call import UdfCall, call

SYMBOL = "symbol"


@dataclass(frozen=True)
class RuntimeCall:
    """A call of function ``call.payload`` of the worker of runtime ``runtime``."""

    runtime: str
    call: UdfCall


def runtime_call(runtime: str, function: str, *args: Any, name: str | None = None) -> RuntimeCall:
    """A call of ``function`` of a compiled worker declared in ``runtimes={runtime: ...}``.

    Arguments are as in :func:`quiver.call` (column names, ``pyarrow.compute`` expressions,
    literals); ``name`` is the result column (default: ``function``)::

        quiver.spark.runtime_call("cc", "add_one", "value", name="next")
    """
    if not isinstance(function, str) or not function:
        raise InvalidInput(f"runtime_call needs a function name, not {function!r}")
    return RuntimeCall(runtime, UdfCall(name or function, SYMBOL, function.encode(), tuple(args)))


def map(
    df: Any,
    udfs: Sequence[UdfCall | RuntimeCall | Callable[..., Any] | str],
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
    """Run quiver UDFs over Spark DataFrame ``df``; return a DataFrame of the columns in
    ``select`` (default: all of ``df``'s) and one column per UDF, named after it.

    ``udfs`` are :func:`quiver.call` results (Python UDFs: by reference when the executors
    can import them, by value when defined in ``__main__`` or a notebook) and
    :func:`runtime_call` results (compiled workers). ``runtimes`` declares those workers,
    ``{"cc": "build/udf_worker"}``: a program that is a file on the driver is shipped to the
    executors with ``SparkContext.addFile`` (``ship_runtimes=False``: run the command as
    given on every node, which must have it). ``workers`` quiver workers per runtime serve
    each executor Python process (Spark already runs one task per core); ``transport``,
    ``batch_timeout`` and ``max_in_flight`` are :class:`quiver.Session`'s, ``batch_rows``
    :meth:`quiver.Session.map`'s.

    The result's Spark schema comes from the UDFs' declared types, learnt on the driver
    (its workers are started once to check every UDF): a missing column, a UDF that does not
    load, or a type Spark has no equivalent of is a :class:`quiver.InvalidInput` (or
    :class:`quiver.WorkerError`) here, before the job starts.

    Each executor Python process keeps one warm :class:`quiver.Session` per runtime across
    tasks and stages. A UDF error fails the task with :class:`quiver.UdfError` (the UDF,
    its error class, the partition, then its traceback); a quiver worker that dies fails the
    task, which Spark runs again from the partition's start, so no row is lost or doubled.
    """
    require_dataframe(df, "map")
    declared = declared_runtimes(runtimes, ship_runtimes)
    groups = grouped_calls(udfs, declared)
    kept = list(df.columns) if select is None else list(select)
    check_columns(kept, list(df.columns), groups)
    plan = Plan(
        groups=groups,
        select=tuple(kept),
        runtimes=tuple(declared),
        options=SessionOptions(workers, transport, float(batch_timeout), max_in_flight),
        batch_rows=batch_rows,
        output_schema=pa.schema([]),
    )
    plan, schema = learn_schema(plan, df)
    ship(plan, df.sparkSession)
    return df.mapInArrow(functools.partial(map_partition, plan), schema)


def require_dataframe(df: Any, what: str) -> None:
    """``df`` is a (classic) PySpark DataFrame."""
    pyspark_sql = _require_pyspark()
    if not isinstance(df, pyspark_sql.DataFrame):
        raise TypeError(f"quiver.spark.{what} takes a Spark DataFrame, not {type(df).__name__}")


def learn_schema(plan: Plan, df: Any) -> tuple[Plan, Any]:
    """The result's Spark schema, from the UDFs' declared types (see :func:`_probe`), and the
    plan with the Arrow schema result batches are handed to Spark in."""
    result = _probe(plan, spark_types.arrow_input_schema(df))
    schema = spark_types.spark_schema(result, plan.udf_names)
    output = spark_types.arrow_output_schema(schema, df.sparkSession)
    return replace(plan, output_schema=output), schema


def ship(plan: Plan, spark: Any) -> None:
    """Ship the runtimes' programs that are files on the driver to every executor."""
    for runtime in plan.runtimes:
        if runtime.shipped:
            spark.sparkContext.addFile(runtime.program)


def _require_pyspark() -> Any:
    try:
        import pyspark.sql
    except ImportError:
        raise ImportError(
            "quiver.spark needs PySpark: pip install 'quiver[spark]' (or pyspark>=4.0)"
        ) from None
    return pyspark.sql


def grouped_calls(
    udfs: Sequence[Any], runtimes: list[Runtime]
) -> tuple[tuple[str, tuple[UdfCall, ...]], ...]:
    """The calls grouped by runtime, in the order each runtime first appears."""
    if not udfs:
        raise InvalidInput("quiver.spark.map needs at least one UDF in udfs=[...]")
    names = [r.name for r in runtimes]
    groups: dict[str, list[UdfCall]] = {}
    for udf in udfs:
        if isinstance(udf, RuntimeCall):
            if udf.runtime not in names:
                raise InvalidInput(
                    f"UDF {udf.call.name!r} runs on runtime {udf.runtime!r}, which is not "
                    f"declared; runtimes={{...}} declares {names or 'none'}"
                )
            groups.setdefault(udf.runtime, []).append(udf.call)
        else:
            groups.setdefault(PYTHON, []).append(udf if isinstance(udf, UdfCall) else call(udf))
    return tuple((name, tuple(calls)) for name, calls in groups.items())


def check_columns(
    kept: list[str],
    columns: list[str],
    groups: tuple[tuple[str, tuple[UdfCall, ...]], ...],
    results: bool = True,
) -> None:
    """Every kept column and every column argument exists; no result name is given twice
    (``results``: the UDF names are result columns)."""
    wanted = [("select", c) for c in kept]
    for _, calls in groups:
        wanted += [(f"UDF {c.name!r}", a) for c in calls for a in c.arguments if isinstance(a, str)]
    for where, column in wanted:
        if column not in columns:
            near = difflib.get_close_matches(column, columns, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise InvalidInput(
                f"{where}: the DataFrame has no column {column!r} (its columns: "
                f"{', '.join(columns)}){hint}"
            )
    names = [*kept, *(c.name for _, calls in groups for c in calls if results)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInput(
            f"result column {twice[0]!r} is given twice (a kept column and a UDF, or two "
            "UDFs); name the UDF with quiver.call(..., name=...) or leave the column out of select"
        )


def _probe(plan: Plan, input_schema: pa.Schema) -> pa.Schema:
    """The result's Arrow schema, from the driver's own warm sessions over no rows: every
    UDF loads and declares its type, as it will on the executors."""
    reader = pa.RecordBatchReader.from_batches(input_schema, iter(()))
    stream = run_plan(plan, reader, on_executor=False)
    schema = stream.schema
    stream.read_all()
    return schema
