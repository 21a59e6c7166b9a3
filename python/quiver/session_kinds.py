"""The grouped and table kinds of ``quiver.Session``: :meth:`~KindMethods.apply` (grouped map),
:meth:`~KindMethods.aggregate` (UDAFs) and :meth:`~KindMethods.flat_map` (a UDTF).

They run in the engine, through the same C++ code as ``quiver run --apply``, ``--agg`` and
``--udtf`` (``cpp/quiver/exec/grouped``): the engine groups the rows, the workers only run the
functions. Each returns a ``pyarrow.RecordBatchReader``, like :meth:`quiver.Session.map`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from quiver.errors import InvalidInput, SessionClosed
from quiver.input_paths import engine_input
from quiver.kinds import GROUPED_MAP, UDAF, UDTF, KindFunction
from quiver.udf_call import (
    UdfCall,
    argument_expression,
    call,
    serialized_expression,
)

#: The largest group a grouped map or simple UDAF sends (Arrow buffer bytes), as ``quiver run``.
DEFAULT_MAX_GROUP_BYTES = 512 << 20

# What each kind is called in errors, and the decorator that declares it.
_KIND_NAMES = {
    GROUPED_MAP: ("a grouped map", "@quiver.grouped_map"),
    UDAF: ("a UDAF", "@quiver.udaf"),
    UDTF: ("a table function", "@quiver.udtf"),
}


class KindMethods:
    """The grouped and table kinds; mixed into :class:`quiver.Session`, which provides the
    engine (``_engine``) and its runtimes (``_runtime_for``), ``workers``, ``max_in_flight``
    and the readers of runs (``_result``)."""

    _engine: Any
    workers: int
    max_in_flight: int

    def _runtime_for(self, requirements: tuple[str, ...]) -> str: ...  # pragma: no cover

    def _result(self, run: Any) -> pa.RecordBatchReader: ...  # pragma: no cover

    def apply(
        self,
        data: Any,
        fn: UdfCall | KindFunction | str,
        group_by: str | Sequence[str],
        *,
        batch_rows: int = 65536,
        max_group_bytes: int = DEFAULT_MAX_GROUP_BYTES,
        input_format: str | None = None,
    ) -> pa.RecordBatchReader:
        """Run a grouped map: call ``fn`` once per group of rows with equal ``group_by`` keys.

        ``fn`` is declared with ``@quiver.grouped_map(returns=...)``; it gets **all rows of one
        group** (every input column, keys included) as a pandas DataFrame or a pyarrow Table
        and returns a table of its declared schema (docs/grouped-map.md). Pass the function,
        ``"path/to/file.py:fn"`` or ``quiver.call(fn)`` (no arguments: it sees whole groups).
        The same as ``quiver run --group-by K --apply file.py:fn``.

        The engine reads ``data`` whole (any ``__arrow_c_stream__`` source, a pyarrow Dataset
        or Scanner, or the paths of files, read as :meth:`quiver.Session.map` reads them, with
        its ``input_format``),
        groups it with Arrow's hash grouper (nulls are a key of their own) and sends whole
        groups, several small ones per message (up to ``batch_rows`` rows). A group over
        ``max_group_bytes`` (Arrow buffer bytes) fails the run naming its keys. Results come
        in order of each group's first row; the workers are the session's warm ones.

        Example::

            import pandas as pd, pyarrow as pa, quiver

            @quiver.grouped_map(returns="k string, x double, centred double")
            def demean(group: pd.DataFrame) -> pd.DataFrame:
                return group.assign(centred=group.x - group.x.mean())

            table = pa.table({"k": ["a", "b", "a"], "x": [1.0, 5.0, 3.0]})
            with quiver.Session(workers=2) as s:
                print(s.apply(table, demean, group_by="k").read_all())
                # k=a: centred -1, 1; k=b: centred 0

        Errors are those of :meth:`quiver.Session.map`; a key column that does not exist is
        :class:`quiver.InvalidInput`, raised here, before any worker starts.
        """
        udf_call = self._kind_call(fn, GROUPED_MAP, "fn")
        if udf_call.arguments:
            raise InvalidInput(
                f"grouped map {udf_call.name!r} gets every column of each group; pass it "
                "without arguments (quiver.call(fn), fn or 'file.py:fn')"
            )
        run = self._engine.apply(
            self._stream(data, "apply", input_format),
            engine_call(udf_call, self._runtime_for(udf_call.requirements)),
            _keys(group_by),
            _positive("batch_rows", batch_rows),
            _positive("max_group_bytes", max_group_bytes),
            self.workers,
            self.max_in_flight,
        )
        return self._result(run)

    def aggregate(
        self,
        data: Any,
        aggs: Mapping[str, UdfCall | KindFunction | str] | Sequence[UdfCall],
        group_by: str | Sequence[str],
        *,
        batch_rows: int = 65536,
        max_group_bytes: int = DEFAULT_MAX_GROUP_BYTES,
        input_format: str | None = None,
    ) -> pa.RecordBatchReader:
        """Compute grouped aggregates (UDAFs): one row per group, one column per UDAF.

        ``aggs`` maps each result column to a UDAF call, ``{"total": quiver.call(fn, "x")}``
        (or is a list of ``quiver.call(fn, "x", name="total")``); arguments are column names.
        UDAFs are declared with ``@quiver.udaf(returns=...)`` (docs/udaf.md), all of one form:

        - *simple*: a function of one group's columns returning one value; the engine groups
          ``data`` whole, as :meth:`apply` does, bounded by ``max_group_bytes``;
        - *partial*: ``init/update/merge/finish``; each input batch is grouped on its own and
          turned into states by the workers, then the states of each key are merged (per
          worker first, then across workers) and finished. Only states are held in memory.
          A ``merge`` that is not associative gives results that depend on the session's
          ``workers`` (deterministic for one count), as documented in docs/udaf.md.

        The output is the key columns, then one column per UDAF, in order of each group's first
        row; the same as ``quiver run --group-by K --agg 'total=file.py:fn(x)'``. The input is
        read and aggregated before this returns (an aggregate needs every row); errors of the
        UDAFs raise here.

        Example::

            import pyarrow as pa, pyarrow.compute as pc, quiver

            @quiver.udaf(returns="float64")
            def spread(x: pa.Array) -> float:
                return pc.max(x).as_py() - pc.min(x).as_py()

            table = pa.table({"k": ["a", "b", "a"], "x": [1.0, 5.0, 4.0]})
            with quiver.Session() as s:
                out = s.aggregate(table, {"spread": quiver.call(spread, "x")}, group_by="k")
                print(out.read_all().to_pylist())
                # [{'k': 'a', 'spread': 3.0}, {'k': 'b', 'spread': 0.0}]
        """
        items = list(aggs.items()) if isinstance(aggs, Mapping) else [(None, a) for a in aggs]
        if not items:
            raise InvalidInput("Session.aggregate needs at least one UDAF in aggs={...}")
        udf_calls = [self._kind_call(fn, UDAF, "aggs", name) for name, fn in items]
        if len({c.requirements for c in udf_calls}) > 1:
            raise InvalidInput(
                "the UDAFs of one Session.aggregate declare different requirements=; "
                "aggregate them in separate calls (one environment per call)"
            )
        runtime = self._runtime_for(udf_calls[0].requirements)
        calls = [engine_call(c, runtime) for c in udf_calls]
        run = self._engine.aggregate(
            self._stream(data, "aggregate", input_format),
            calls,
            _keys(group_by),
            _positive("batch_rows", batch_rows),
            _positive("max_group_bytes", max_group_bytes),
            self.workers,
            self.max_in_flight,
        )
        self._runs.add(run)
        first = run.read_next()  # the output schema is known with the first batch or the end
        head = [] if first is None else [pa.RecordBatch._import_from_c_capsule(*first)]
        return self._result(run, head)

    def flat_map(
        self,
        data: Any,
        udtf: UdfCall | KindFunction | str,
        select: Sequence[str] | None = None,
        *,
        batch_rows: int = 65536,
        input_format: str | None = None,
    ) -> pa.RecordBatchReader:
        """Run a table function (UDTF): zero or more output rows per input row.

        ``udtf`` is ``quiver.call(fn, "text", ...)`` of a function declared with
        ``@quiver.udtf(returns=...)`` (docs/udtf.md); arguments are as for :meth:`map` (column
        names, ``pyarrow.compute`` expressions, literals). The output is the input columns in
        ``select`` (default: all; ``[]`` for none), each repeated beside the rows its input
        row made, then the UDTF's columns, in input order; the same as
        ``quiver run --select id --udtf 'w=file.py:fn(text)'``. It streams: batches of at most
        ``batch_rows`` input rows go to the workers as the reader is read.

        Example::

            import pyarrow as pa, quiver

            @quiver.udtf(returns="struct<word: string, position: int32>")
            def words(text: str):
                for position, word in enumerate((text or "").split()):
                    yield word, position

            table = pa.table({"id": [1, 2], "text": ["a b", "c"]})
            with quiver.Session() as s:
                print(s.flat_map(table, quiver.call(words, "text"), select=["id"]).read_all())
                # id 1, 1, 2; word a, b, c; position 0, 1, 0

        The engine trusts no worker: an input-row index out of range, or one that goes
        backwards, fails the read with an error naming the UDTF, the index and the batch.
        """
        udf_call = self._kind_call(udtf, UDTF, "udtf")
        run = self._engine.flat_map(
            self._stream(data, "flat_map", input_format),
            engine_call(udf_call, self._runtime_for(udf_call.requirements)),
            None if select is None else list(select),
            _positive("batch_rows", batch_rows),
            self.workers,
            self.max_in_flight,
        )
        return self._result(run)

    # ---- shared ----

    def _kind_call(self, fn: Any, kind: str, parameter: str, name: str | None = None) -> UdfCall:
        """Check ``fn`` is of ``kind``; return its call."""
        if self._engine is None or self._engine.closed():
            raise SessionClosed("this quiver.Session is closed; open a new one")
        what, decorator = _KIND_NAMES[kind]
        if callable(fn) and not isinstance(fn, KindFunction):  # @quiver.udf, or undecorated
            udf_call, declared = None, "scalar"
        else:
            udf_call = fn if isinstance(fn, UdfCall) else call(fn)
            declared = udf_call.kind
        if udf_call is None or declared not in ("", kind):
            described = _KIND_NAMES.get(declared, ("a scalar UDF or an undecorated function",))
            raise InvalidInput(
                f"{parameter}= takes {what} (declared with {decorator}), not {described[0]} "
                f"({getattr(fn, 'name', None) or getattr(fn, '__name__', None) or fn!r}); "
                f"see help(quiver.{decorator[8:]})"
            )
        if name is not None:
            udf_call = _renamed(udf_call, name)
        if udf_call.constructor_args:
            raise InvalidInput(
                f"{what} takes no constructor arguments (init= or .bind()); "
                f"{udf_call.name!r} got {udf_call.constructor_args}"
            )
        return udf_call

    def _stream(self, data: Any, method: str, input_format: str | None) -> Any:
        """The engine's input: the Arrow C stream of ``data``, or the files it names (of
        ``input_format``, else as their extensions say)."""
        return engine_input(data, method, input_format)


def _renamed(udf_call: UdfCall, name: str) -> UdfCall:
    import dataclasses

    return dataclasses.replace(udf_call, name=name)


def engine_call(udf_call: UdfCall, runtime: str) -> tuple[Any, ...]:
    """The call as the engine takes it, to run on the workers of ``runtime``."""
    arguments = [serialized_expression(argument_expression(a)) for a in udf_call.arguments]
    return (
        udf_call.name,
        udf_call.payload_format,
        udf_call.payload,
        arguments,
        udf_call.constructor_args,
        runtime,
    )


def _keys(group_by: str | Sequence[str]) -> list[str]:
    keys = [group_by] if isinstance(group_by, str) else list(group_by)
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise InvalidInput(f"group_by= takes a column name or a list of them, not {group_by!r}")
    return keys


def _positive(name: str, value: int) -> int:
    if int(value) < 1:
        raise InvalidInput(f"{name} must be at least 1, not {value}")
    return int(value)
