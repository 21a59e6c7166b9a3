"""``quiver.Session``: the engine in process, over anything that speaks the Arrow C stream.

A session owns a warm pool of worker processes; each :meth:`Session.map` streams batches
through them and returns a ``pyarrow.RecordBatchReader``. See ``help(quiver.Session.map)``.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import json
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from quiver.errors import InvalidInput, SessionClosed
from quiver.session_kinds import KindMethods

PYTHON_REF = "python/ref"
PYTHON_CLOUDPICKLE = "python/cloudpickle"

# The session's transport names, and the engine's transports they mean.
_TRANSPORTS = {
    "uds": "uds",
    "shm": "shm",
    "grpc": "grpc+unix",
    "grpc+unix": "grpc+unix",
    "grpc+tcp": "grpc+tcp",
}


@dataclass(frozen=True)
class UdfCall:
    """One UDF applied to arguments; made by :func:`quiver.call`.

    ``name`` is the result column, ``payload_format`` and ``payload`` how the worker finds the
    function (``python/ref``: ``"module:qualname"`` or ``"/abs/file.py:func"``;
    ``python/cloudpickle``: the function by value), ``arguments`` the column names, literals
    and ``pyarrow.compute`` expressions it is called with.
    """

    name: str
    payload_format: str
    payload: bytes
    arguments: tuple[Any, ...]
    constructor_args: str = ""
    """A class UDF's constructor keyword arguments, as a JSON object ("" for none)."""
    requirements: tuple[str, ...] = ()
    """The packages the UDF's workers need (docs/environments.md); () runs it here."""
    kind: str = ""
    """What ``fn`` was declared as: "scalar" (``@quiver.udf``), a kind of ``quiver.kinds``
    ("grouped_map", "udaf", "udtf"), or "" when not known here (a "file.py:func" string)."""


def call(
    fn: Callable[..., Any] | str,
    *args: Any,
    name: str | None = None,
    init: dict[str, Any] | None = None,
) -> UdfCall:
    """Return a call of UDF ``fn`` on ``args`` for :meth:`Session.map`.

    ``fn`` is one of:

    - a function (usually ``@quiver.udf``-decorated) that workers can import by module and
      qualified name: sent by reference;
    - a function defined in ``__main__``, a notebook or another function: sent by value
      (cloudpickle), so it needs nothing importable;
    - a string ``"path/to/file.py:func"`` or ``"package.module:func"``.

    Each argument is a column name (``"city"``), a ``pyarrow.compute`` expression
    (``pc.field("a") + 1``, ``pc.utf8_upper(pc.field("name"))``) or any other value, taken
    as a literal (use ``pc.scalar("text")`` for a string literal). ``name`` is the result
    column (default: the function's name).

    A class UDF (``@quiver.udf`` on a class, docs/class-udfs.md) takes its constructor's
    keyword arguments from ``init`` (JSON values: numbers, strings, lists, dicts, ...) or from
    ``Model.bind(**kwargs)`` (any picklable values).

    >>> quiver.call("udfs.py:clean", "city", name="city_clean")    # doctest: +SKIP
    >>> quiver.call(Model, "text", init={"path": "model.bin"})      # doctest: +SKIP
    """
    from quiver.envs import declared_requirements, normalise
    from quiver.kinds import KindFunction
    from quiver.udf import UserDefinedFunction

    init_text = _init_json(init) if init else ""
    kind = fn.kind if isinstance(fn, KindFunction) else ""
    kind = "scalar" if isinstance(fn, UserDefinedFunction) else kind
    if isinstance(fn, str):
        payload_format, payload, default_name = PYTHON_REF, *_resolve_ref(fn)
        requirements = declared_requirements(payload.decode())
    elif callable(fn):
        declares = isinstance(fn, (UserDefinedFunction, KindFunction))
        requirements = fn.requirements if declares else ()
        bound = _bound_as_json(fn) if isinstance(fn, UserDefinedFunction) else None
        if bound is not None:  # by reference to the class, with its arguments beside it
            fn, init_text = bound[0], _merged_json(bound[1], init_text)
        payload_format, payload, default_name = _resolve_function(fn)
    else:
        raise TypeError(
            f"quiver.call takes a function or a 'file.py:func' string, not {type(fn).__name__}"
        )
    return UdfCall(
        name or default_name,
        payload_format,
        payload,
        tuple(args),
        init_text,
        normalise(requirements),
        kind,
    )


def _init_json(init: dict[str, Any]) -> str:
    """Encode a class UDF's constructor arguments as a JSON object."""
    if not isinstance(init, dict) or not all(isinstance(k, str) for k in init):
        raise TypeError(f"init= takes a dict of keyword arguments, not {init!r}")
    try:
        return json.dumps(init)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"init= values must be JSON values ({exc}); pass other objects with "
            "quiver.call(Model.bind(**kwargs), ...), which pickles them"
        ) from None


def _merged_json(first: dict[str, Any], second_text: str) -> str:
    """Merge two sets of constructor arguments (the second wins) into JSON text."""
    merged = {**first, **(json.loads(second_text) if second_text else {})}
    return json.dumps(merged) if merged else ""


def _bound_as_json(fn: Any) -> tuple[Any, dict[str, Any]] | None:
    """For ``Model.bind(...)`` with JSON arguments, return the unbound UDF and the arguments.

    The unbound one can then go by reference; None when there are no arguments or they are
    not JSON (the bound object then goes by value, arguments and all).
    """
    if not fn.init_kwargs:
        return None
    try:
        json.dumps(fn.init_kwargs)
    except (TypeError, ValueError):
        return None
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    unbound = module
    for part in (getattr(fn, "__qualname__", "") or "<none>").split("."):
        unbound = getattr(unbound, part, None)
    if getattr(unbound, "func", None) is not fn.func:
        return None
    return unbound, fn.init_kwargs


def _resolve_ref(ref: str) -> tuple[bytes, str]:
    """Check a ``file.py:func`` or ``module:func`` reference; return its payload and name."""
    target, sep, qualname = ref.rpartition(":")
    if not sep or not target or not qualname:
        raise InvalidInput(
            f"UDF reference {ref!r} is not of the form 'path/to/file.py:func' or 'module:func'"
        )
    if target.endswith(".py") or os.sep in target:
        path = os.path.abspath(target)
        if not os.path.isfile(path):
            raise InvalidInput(f"UDF reference {ref!r}: there is no file {path}")
        return f"{path}:{qualname}".encode(), qualname.rsplit(".", 1)[-1]
    if importlib.util.find_spec(target) is None:
        raise InvalidInput(
            f"UDF reference {ref!r}: module {target!r} cannot be imported here "
            "(check its spelling and sys.path)"
        )
    return ref.encode(), qualname.rsplit(".", 1)[-1]


def _resolve_function(fn: Callable[..., Any]) -> tuple[str, bytes, str]:
    """Send ``fn`` by reference when a worker can import it as itself, else by value."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    name = getattr(fn, "__name__", None) or "udf"
    if module and qualname and module != "__main__" and "<" not in qualname:
        if _importable_as(fn, module, qualname):
            return PYTHON_REF, f"{module}:{qualname}".encode(), name
    import cloudpickle

    return PYTHON_CLOUDPICKLE, cloudpickle.dumps(fn), name


def _importable_as(fn: Any, module: str, qualname: str) -> bool:
    """Return whether ``module:qualname`` names ``fn`` itself."""
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:
        return False
    return obj is fn


def _expression(argument: Any) -> pc.Expression:
    """A column name, an expression, or a literal, as an Arrow compute expression."""
    if isinstance(argument, pc.Expression):
        return argument
    if isinstance(argument, str):
        return pc.field(argument)
    return pc.scalar(argument)


def _serialized(expression: pc.Expression) -> bytes:
    """The expression in Arrow's own serialization (``arrow::compute::Serialize``)."""
    _, (buffer,) = expression.__reduce__()
    return buffer.to_pybytes()


def _stream_capsule(data: Any, method: str = "map") -> Any:
    """Return an ``arrow_array_stream`` capsule over ``data`` without copying its columns."""
    if hasattr(data, "__arrow_c_stream__"):
        return data.__arrow_c_stream__()
    import pyarrow.dataset as ds

    if isinstance(data, ds.Dataset):
        return data.scanner().to_reader().__arrow_c_stream__()
    if isinstance(data, ds.Scanner):
        return data.to_reader().__arrow_c_stream__()
    if hasattr(data, "collect") and hasattr(data, "lazy"):  # a Polars LazyFrame
        return data.collect().__arrow_c_stream__()
    raise TypeError(
        f"Session.{method} needs Arrow data: an object with __arrow_c_stream__ (a pyarrow Table or "
        f"RecordBatchReader, a Polars DataFrame, a DuckDB relation, ...), a pyarrow Dataset "
        f"or Scanner; got {type(data).__module__}.{type(data).__qualname__}"
    )


class Session(KindMethods):
    """A warm pool of UDF worker processes, and the engine that streams Arrow batches to them.

    >>> import pyarrow as pa, quiver                                  # doctest: +SKIP
    >>> with quiver.Session(workers=2) as s:                          # doctest: +SKIP
    ...     out = s.map(pa.table({"name": ["ada"]}), udfs=[quiver.call(shout, "name")])
    ...     print(out.read_all())

    ``workers`` is the number of worker processes a ``map`` runs on (results keep the input's
    order); they start on the first ``map`` and stay warm for the next ones. ``transport`` is
    ``"uds"`` (framing over a Unix socket), ``"grpc"`` (gRPC over a Unix socket) or
    ``"grpc+tcp"``. A worker that takes longer than ``batch_timeout`` seconds on one batch is
    stopped (:class:`quiver.UdfTimeout`). ``python`` is the interpreter of the workers
    (default: this one, with this process's ``sys.path``). ``max_in_flight`` bounds the
    batches sent to one worker and not yet answered (memory).

    Besides :meth:`map` (scalar UDFs), :meth:`apply` runs a grouped map, :meth:`aggregate`
    grouped aggregates (UDAFs) and :meth:`flat_map` a table function (UDTF), on the same
    warm workers.

    Close the session (``with``, :meth:`close`) to stop its workers; they are also stopped
    when it is garbage-collected and at interpreter exit.
    """

    def __init__(
        self,
        workers: int = 4,
        transport: str = "uds",
        batch_timeout: float = 60,
        python: str | None = None,
        *,
        start_timeout: float = 30,
        max_in_flight: int = 4,
        environment: dict[str, str] | None = None,
    ) -> None:
        if workers < 1:
            raise InvalidInput(f"workers must be at least 1, not {workers}")
        if transport not in _TRANSPORTS:
            raise InvalidInput(f"unknown transport {transport!r}; known: {', '.join(_TRANSPORTS)}")
        try:
            from quiver import _engine
        except ImportError as exc:
            raise ImportError(
                "quiver's engine (quiver._engine) is not built: install the package with "
                "`pip install ./python`, or build it with `bash scripts/setup.sh`"
            ) from exc
        self.workers = workers
        self.transport = transport
        self.batch_timeout = batch_timeout
        self.max_in_flight = max_in_flight
        command = [python or sys.executable, "-m", "quiver.worker"]
        self._engine_args = (
            _TRANSPORTS[transport],
            float(batch_timeout),
            float(start_timeout),
        )
        self._extra_environment = environment
        self._engine: Any = _engine.Engine(
            command,
            *self._engine_args,
            _worker_environment(python, environment),
            workers,
        )
        # One more engine (worker pool) per requirement set, started on first use.
        self._env_engines: dict[tuple[str, ...], Any] = {}
        self._runs: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        _open_sessions.add(self)

    def map(
        self,
        data: Any,
        udfs: Sequence[UdfCall | Callable[..., Any] | str],
        batch_rows: int = 65536,
        select: Sequence[str] | None = None,
        *,
        batch_bytes: int | None = None,
    ) -> pa.RecordBatchReader:
        """Run ``udfs`` over ``data`` in the workers; return the results as a stream.

        ``data`` is anything that exports the Arrow C stream (``__arrow_c_stream__``): a
        pyarrow Table, RecordBatch or RecordBatchReader, a Polars DataFrame, a DuckDB relation;
        or a pyarrow Dataset or Scanner. Its columns are not copied: the ones kept beside the
        results are the input's own buffers.

        ``udfs`` are :func:`quiver.call` results (a bare function or ``"file.py:func"`` string
        is called on no argument). Each adds one column, named after the UDF, after the input
        columns in ``select`` (default: all of them, ``[]`` for none). Batches larger than
        ``batch_rows`` rows, or whose UDF arguments hold more than ``batch_bytes`` bytes
        (default 4 MiB), are cut (without a copy) before they go to a worker; a single row
        larger than ``batch_bytes`` goes alone.

        The result is a ``pyarrow.RecordBatchReader`` that computes batch by batch as it is
        read, so memory stays flat: read it while the session is open, with pyarrow, Polars
        (``pl.from_arrow``), DuckDB or ``pq.write_table``. Ctrl-C while reading cancels the
        run; the session stays usable.

        Example::

            import pyarrow as pa, pyarrow.compute as pc, quiver

            @quiver.udf(returns="string")
            def shout(name: pa.Array) -> pa.Array:
                return pc.utf8_upper(name)

            table = pa.table({"id": [1, 2], "name": ["ada", "bob"], "score": [1.0, 2.5]})
            with quiver.Session(workers=2) as s:
                out = s.map(table,
                            udfs=[quiver.call(shout, "name"),                  # a column
                                  quiver.call("udfs.py:clean", pc.field("score") * 2),
                                  quiver.call(lambda x: x, "id", name="same")],  # by value
                            select=["id"])
                print(out.read_all())          # id, shout, clean, same

        Errors are :class:`quiver.QuiverError` subclasses: :class:`quiver.UdfError` (the UDF
        raised; ``udf_name``, ``error_class``, ``traceback``), :class:`quiver.WorkerError` (a
        UDF that does not load), :class:`quiver.WorkerCrashed`, :class:`quiver.UdfTimeout`,
        :class:`quiver.ProtocolError`, :class:`quiver.InvalidInput` (a column that does not
        exist, a duplicate name), :class:`quiver.SessionClosed`. A failure raises when the
        batch it happened on is read; a wrong column or UDF reference raises here, before
        any data moves.
        """
        engine = self._engine
        if engine is None or engine.closed():
            raise SessionClosed("this quiver.Session is closed; open a new one")
        if batch_bytes is not None and batch_bytes < 1:
            raise InvalidInput(f"batch_bytes must be at least 1, not {batch_bytes}")
        calls = [u if isinstance(u, UdfCall) else call(u) for u in udfs]
        if not calls:
            raise InvalidInput("Session.map needs at least one UDF in udfs=[...]")
        groups: dict[tuple[str, ...], list[UdfCall]] = {}
        for c in calls:
            groups.setdefault(c.requirements, []).append(c)
        if len(groups) == 1:
            ((requirements, group),) = groups.items()
            return self._map_on(
                self._engine_for(requirements), data, group, select, batch_rows, batch_bytes
            )
        # UDFs in several environments: one run per environment, each adding its results
        # to the stream the next one reads; the last step puts the columns in order.
        stream: Any = data
        kept: list[str] | None = None if select is None else list(select)
        for requirements, group in groups.items():
            stream = self._map_on(
                self._engine_for(requirements), stream, group, None, batch_rows, batch_bytes
            )
            if kept is None:  # the first run's output is every input column, then its results
                kept = stream.schema.names[: len(stream.schema) - len(group)]
        return _project(stream, [*(kept or []), *(c.name for c in calls)])

    def _engine_for(self, requirements: tuple[str, ...]) -> Any:
        """The engine whose workers run in the environment of ``requirements``."""
        if not requirements:
            return self._engine
        engine = self._env_engines.get(requirements)
        if engine is None or engine.closed():
            from quiver import _engine
            from quiver.envs import ensure_env

            python = str(ensure_env(requirements))
            engine = _engine.Engine(
                [python, "-m", "quiver.worker"],
                *self._engine_args,
                _env_worker_environment(self._extra_environment),
                self.workers,
            )
            self._env_engines[requirements] = engine
        return engine

    def _map_on(
        self,
        engine: Any,
        data: Any,
        calls: Sequence[UdfCall],
        select: Sequence[str] | None,
        batch_rows: int,
        batch_bytes: int | None,
    ) -> pa.RecordBatchReader:
        """Run ``calls`` over ``data`` on one engine's workers."""
        stream = _stream_capsule(data)
        engine_calls = [
            (
                c.name,
                c.payload_format,
                c.payload,
                [_serialized(_expression(a)) for a in c.arguments],
                c.constructor_args,
            )
            for c in calls
        ]
        run = engine.map(
            stream,
            engine_calls,
            None if select is None else list(select),
            int(batch_rows),
            self.workers,
            self.max_in_flight,
            None if batch_bytes is None else int(batch_bytes),
        )
        self._runs.add(run)
        schema = pa.Schema._import_from_c_capsule(run.schema())
        return pa.RecordBatchReader.from_batches(schema, _read(run))

    @property
    def workers_started(self) -> int:
        """How many worker processes this session has started so far."""
        return self._engine.workers_started() if self._engine is not None else 0

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._engine is None or self._engine.closed()

    def close(self) -> None:
        """Cancel the runs still being read and stop the workers. Idempotent."""
        engine = self._engine
        if engine is None:
            return
        for run in list(self._runs):
            run.cancel()
        engine.close()
        for env_engine in self._env_engines.values():
            env_engine.close()
        _open_sessions.discard(self)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: S110 - never raise from a finalizer
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.workers_started} workers started"
        return f"<quiver.Session workers={self.workers} transport={self.transport!r} {state}>"


def _read(run: Any) -> Iterator[pa.RecordBatch]:
    """Yield the run's batches; whatever stops the reading early ends the run."""
    try:
        while True:
            item = run.read_next()
            if item is None:
                return
            yield pa.RecordBatch._import_from_c_capsule(*item)
    finally:
        run.cancel()


def _worker_environment(python: str | None, extra: dict[str, str] | None) -> dict[str, str]:
    """The workers' extra environment: this process's sys.path (so that what imports here
    imports there, when they run this interpreter) and one BLAS thread per worker."""
    environment: dict[str, str] = {}
    if python is None:
        paths = [os.getcwd() if p == "" else p for p in sys.path]
        environment["PYTHONPATH"] = os.pathsep.join(p for p in paths if os.path.isdir(p))
    # A worker runs one UDF call at a time beside the engine: BLAS thread pools would spin
    # and take the engine's cores. A user's own setting wins.
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if variable not in os.environ:
            environment[variable] = "1"
    environment.update(extra or {})
    return environment


def _env_worker_environment(extra: dict[str, str] | None) -> dict[str, str]:
    """The extra environment of workers in a requirements environment: this process's own
    import paths (scripts, the working directory), but not its site-packages, which the
    environment sees after its own packages (so that the requirements shadow them)."""
    environment = _worker_environment("the environment's python", extra)
    site_dirs = {os.path.realpath(p) for p in _site_directories()}
    paths = [os.getcwd() if p == "" else p for p in sys.path]
    own = [p for p in paths if os.path.isdir(p) and os.path.realpath(p) not in site_dirs]
    own = [p for p in own if not os.path.realpath(p).startswith(_stdlib_prefixes())]
    if own:
        environment.setdefault("PYTHONPATH", os.pathsep.join(own))
    return environment


def _site_directories() -> list[str]:
    """This interpreter's site-packages directories."""
    import site
    import sysconfig

    return [*site.getsitepackages(), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]


def _stdlib_prefixes() -> tuple[str, ...]:
    """Where the standard library lives (it is in every environment already)."""
    import sysconfig

    paths = (sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib"))
    return tuple(os.path.realpath(p) for p in paths if p)


def _project(reader: pa.RecordBatchReader, names: list[str]) -> pa.RecordBatchReader:
    """Stream ``reader``'s batches with only ``names``, in that order (no copy)."""
    schema = pa.schema([reader.schema.field(n) for n in names])
    return pa.RecordBatchReader.from_batches(schema, (b.select(names) for b in reader))


_open_sessions: weakref.WeakSet[Session] = weakref.WeakSet()


@atexit.register
def _close_open_sessions() -> None:
    """Stop every session's workers when the interpreter exits."""
    for session in list(_open_sessions):
        session.close()
