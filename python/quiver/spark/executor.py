"""The executor side of ``quiver.spark.map``: warm sessions and the partition function.

Each Python process (a Spark executor's Python worker, or the driver for the schema probe)
keeps one :class:`quiver.Session` per runtime and set of options, started on first use and
reused by every later task and stage that process runs (Spark reuses its Python workers,
``spark.python.worker.reuse``). The sessions close when the process exits; if it ends with
``os._exit`` (as Spark's forked workers do), its quiver workers end with it (they die with
their parent, ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from quiver.errors import (
    InvalidInput,
    QuiverError,
    UdfError,
    UdfTimeout,
    WorkerCrashed,
    WorkerError,
)
from quiver.session import Session
from quiver.spark.plan import APPLY, FLAT_MAP, Plan, Runtime, SessionOptions

_sessions: dict[tuple[Any, ...], Session] = {}
_session_paths: dict[tuple[Any, ...], tuple[str, ...]] = {}
_lock = threading.Lock()


class _CommandSession(Session):
    """A :class:`quiver.Session` whose workers run a compiled worker's command (the C++ or
    Rust SDK's) instead of the Python worker; UDFs are called by symbol."""

    def __init__(self, command: list[str], options: SessionOptions) -> None:
        super().__init__(
            workers=options.workers,
            transport=options.transport,
            batch_timeout=options.batch_timeout,
            max_in_flight=options.max_in_flight,
        )
        from quiver import _engine
        from quiver.run_handles import SessionEngine

        # The Python worker's engine has started nothing yet: put the command's in its place.
        self._engine.close()
        engine = _engine.Engine(command, *self._engine_args, {}, options.workers)
        self._engine = SessionEngine(engine, self._runs, self._metrics)


def session_for(runtime: Runtime | None, options: SessionOptions, on_executor: bool) -> Session:
    """This process's warm session for ``runtime`` (None: Python UDFs) and ``options``."""
    command = None if runtime is None else executor_command(runtime, on_executor)
    # Python workers import with this process's sys.path as it was when they started; Spark
    # adds the job's --py-files / addPyFile directories to it per task, so a session started
    # before is replaced by one that sees them.
    key = (command, options)
    imports = tuple(sys.path) if command is None else ()
    with _lock:
        session = _sessions.get(key)
        if session is not None and _session_paths.get(key) != imports:
            session.close()
            session = None
        if session is None or session.closed:
            _session_paths[key] = imports
            if command is None:
                session = Session(
                    workers=options.workers,
                    transport=options.transport,
                    batch_timeout=options.batch_timeout,
                    max_in_flight=options.max_in_flight,
                )
            else:
                session = _CommandSession(list(command), options)
            _sessions[key] = session
        return session


def executor_command(runtime: Runtime, on_executor: bool) -> tuple[str, ...]:
    """The runtime's command as this process runs it: a shipped program is the executor's
    own copy (``SparkFiles``); any other must be found here, or the task fails saying so."""
    program = runtime.program
    if runtime.shipped and on_executor:
        from pyspark import SparkFiles

        program = SparkFiles.get(os.path.basename(program))
        if os.path.isfile(program) and not os.access(program, os.X_OK):
            os.chmod(program, os.stat(program).st_mode | 0o111)
    found = shutil.which(program)
    if found is None:
        where = f"executor {socket.gethostname()}" if on_executor else "the driver"
        raise InvalidInput(
            f"runtime {runtime.name!r}: its program {program!r} is not found on {where} "
            f"(not a file, nor on PATH={os.environ.get('PATH', '')}); install it on every "
            "node, or give its path on the driver so that quiver.spark ships it (addFile)"
        )
    return (found, *runtime.command[1:])


def run_plan(plan: Plan, data: Any, on_executor: bool) -> pa.RecordBatchReader:
    """Run the plan over ``data`` (Arrow: a reader or a table) in this process's sessions."""
    if plan.kind in (APPLY, FLAT_MAP):
        ((name, (call,)),) = plan.groups
        session = session_for(plan.runtime(name), plan.options, on_executor)
        if plan.kind == APPLY:
            return session.apply(
                data, call, group_by=list(plan.group_by), batch_rows=plan.batch_rows
            )
        return session.flat_map(data, call, select=list(plan.select), batch_rows=plan.batch_rows)
    return map_stream(plan, data, on_executor)


def map_stream(plan: Plan, reader: Any, on_executor: bool) -> pa.RecordBatchReader:
    """Run the plan's UDFs over ``reader``: one session run per runtime, chained, then the
    kept columns and the UDF columns in the order of udfs=[...]."""
    stream: Any = reader
    single = len(plan.groups) == 1
    for name, calls in plan.groups:
        session = session_for(plan.runtime(name), plan.options, on_executor)
        stream = session.map(
            stream,
            udfs=list(calls),
            batch_rows=plan.batch_rows,
            select=list(plan.select) if single else None,
        )
    if single:
        return stream
    names = [*plan.select, *plan.udf_names]
    schema = pa.schema([stream.schema.field(n) for n in names])
    return pa.RecordBatchReader.from_batches(schema, (b.select(names) for b in stream))


def map_partition(plan: Plan, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The function of ``mapInArrow`` (scalar UDFs, table functions): run one partition's
    batches; a partition of no batches starts nothing and gives nothing."""
    first = next(batches, None)
    if first is None:
        return
    reader = pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))
    try:
        for batch in run_plan(plan, reader, on_executor=True):
            if batch.schema != plan.output_schema:
                batch = batch.cast(plan.output_schema)
            yield batch
    except QuiverError as error:
        raise task_error(error, plan) from None


def apply_group(plan: Plan, group: pa.Table) -> pa.Table:
    """The function of ``applyInArrow``: run the grouped map over one group's rows."""
    try:
        result = run_plan(plan, group, on_executor=True).read_all()
    except QuiverError as error:
        raise task_error(error, plan) from None
    return result if result.schema == plan.output_schema else result.cast(plan.output_schema)


def task_error(error: QuiverError, plan: Plan) -> QuiverError:
    """The error the task fails with: what went wrong first (the UDF, its error class), then
    where (partition, stage, attempt, host), then the UDF's traceback."""
    where = _where()
    detail = dict(error.__dict__)
    if isinstance(error, WorkerError):
        headline = (
            f"UDF {error.udf_name!r} could not run on {where}: {error.error_class or 'error'}"
            ". A UDF referenced by module must import on every executor: ship its module with "
            "spark.sparkContext.addPyFile(...) (or --py-files), or define it in the driver's "
            "__main__ to send it by value"
        )
    elif isinstance(error, UdfError):
        headline = f"UDF {error.udf_name!r} raised {error.error_class} on {where}"
    elif isinstance(error, WorkerCrashed):
        headline = (
            f"a quiver worker running UDFs {plan.udf_names} died on {where}; the task fails "
            "and Spark runs it again (spark.task.maxFailures), from the partition's first row"
        )
    elif isinstance(error, UdfTimeout):
        headline = f"a UDF of {plan.udf_names} took longer than batch_timeout on {where}"
    else:
        headline = f"quiver failed on {where}"
    message = f"{headline}\n{error.message}"
    traceback = getattr(error, "traceback", "")
    if traceback and traceback not in message:
        message += f"\nThe UDF's traceback:\n{traceback}"
    return type(error)(message, detail)


def _where() -> str:
    """The Spark task this process runs: partition, stage, attempt and host."""
    from pyspark import TaskContext

    task = TaskContext.get()
    host = socket.gethostname()
    if task is None:
        return f"host {host}"
    return (
        f"Spark partition {task.partitionId()} (stage {task.stageId()}, attempt "
        f"{task.attemptNumber()}) on host {host}, executor process {os.getpid()}"
    )


def warm_sessions() -> list[Session]:
    """This process's open sessions (for tests and diagnostics)."""
    with _lock:
        return [s for s in _sessions.values() if not s.closed]
