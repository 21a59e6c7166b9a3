"""``quiver.Session``: the engine in process, over anything that speaks the Arrow C stream.

A session owns a warm pool of worker processes; each :meth:`Session.map` streams batches
through them and returns a ``pyarrow.RecordBatchReader``. See ``help(quiver.Session.map)``.
"""

from __future__ import annotations

import atexit
import itertools
import os
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from quiver.errors import InvalidInput, SessionClosed
from quiver.export import start_exports
from quiver.input_paths import engine_input
from quiver.run_handles import SessionEngine, SessionMetrics
from quiver.sandbox import sandbox_environment
from quiver.session_kinds import KindMethods, engine_call
from quiver.udf_call import UdfCall, call, read_batches


class Session(KindMethods):
    """A warm pool of UDF worker processes, and the engine that streams Arrow batches to them.

    >>> import pyarrow as pa, quiver                                  # doctest: +SKIP
    >>> with quiver.Session(workers=2) as s:                          # doctest: +SKIP
    ...     out = s.map(pa.table({"name": ["ada"]}), udfs=[quiver.call(shout, "name")])
    ...     print(out.read_all())

    ``workers`` is the number of worker processes a ``map`` runs on (results keep the input's
    order); they start on the first ``map`` and stay warm for the next ones. ``transport`` is
    ``"auto"`` (shared memory with workers that speak it, else a Unix socket), ``"shm"``,
    ``"uds"`` (framing over a Unix socket), ``"grpc"`` (gRPC over a Unix socket) or
    ``"grpc+tcp"``. A worker that takes longer than ``batch_timeout`` seconds on one batch is
    stopped (:class:`quiver.UdfTimeout`). ``python`` is the interpreter of the workers
    (default: this one, with this process's ``sys.path``). ``max_in_flight`` bounds the
    batches sent to one worker and not yet answered (memory). With ``traceback_locals`` a UDF's
    error shows the local variables of its failing frame, each repr cut to 200 characters.
    With ``sandbox=True`` the workers run without network but their connection to this
    process, read only the system and the Python import path (not the home folder), and write
    only in a private temporary directory (``$TMPDIR``); a UDF that breaks a rule gets a
    ``PermissionError`` naming it (docs/security.md). ``sandbox=[PATH, ...]`` lets them read
    those paths too (the folder of ``"file.py:function"`` UDFs, data). Linux >= 6.7 only:
    refused, never ignored, elsewhere. A UDF declared ``@quiver.udf(sandbox=...)`` runs sandboxed
    whatever ``sandbox`` says here, on workers of its own.
    ``prometheus_port`` serves :meth:`metrics` for Prometheus at :attr:`prometheus_url` (a port
    on 127.0.0.1, 0 for any, or ``"HOST:PORT"``; needs ``prometheus-client``); ``otlp_endpoint``
    (``"http://host:4318"``) exports them, and a span per map, to an OpenTelemetry collector
    over OTLP/HTTP (needs ``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp-proto-http``);
    docs/metrics.md. ``log_dir`` keeps every line the workers write (``print``, ``logging``,
    ``sys.stderr``, a raw write to fd 1 or 2) in ``DIR/worker-ID-PID.jsonl``, one JSON object
    a line with its UDFs, batch, level and time, as ``quiver run --log-dir`` does; search them
    with ``quiver logs DIR``. ``trace_batches`` (0 to 1, with ``otlp_endpoint``) is the share of
    batches exported as spans of their own, beside a span per worker start.

    Besides :meth:`map` (scalar UDFs), :meth:`apply` runs a grouped map, :meth:`aggregate`
    grouped aggregates (UDAFs) and :meth:`flat_map` a table function (UDTF), on the same
    warm workers.

    Close the session (``with``, :meth:`close`) to stop its workers; they are also stopped
    when it is garbage-collected and at interpreter exit.
    """

    def __init__(
        self,
        workers: int = 4,
        transport: str = "auto",
        batch_timeout: float = 60,
        python: str | None = None,
        *,
        start_timeout: float = 30,
        max_in_flight: int = 4,
        environment: dict[str, str] | None = None,
        traceback_locals: bool = False,
        sandbox: bool | Sequence[str] = False,
        prometheus_port: int | str | None = None,
        otlp_endpoint: str | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        trace_batches: float = 0,
    ) -> None:
        if workers < 1:
            raise InvalidInput(f"workers must be at least 1, not {workers}")
        if not 0 <= trace_batches <= 1:
            raise InvalidInput(f"trace_batches must be from 0 to 1, not {trace_batches}")
        log_dir = _prepared_log_dir(log_dir)
        # The system's OpenSSL is loaded before the engine: pyarrow's libparquet, which the
        # engine links (it reads Parquet paths), exports the symbols of an OpenSSL of its own,
        # and a libcrypto first loaded as the engine's dependency would bind to those (hashlib
        # and ssl then crash).
        import hashlib  # noqa: F401

        try:
            from quiver import _engine
        except ImportError as exc:
            raise ImportError(
                "quiver's engine (quiver._engine) is not built: install the package with "
                "`pip install ./python`, or build it with `bash scripts/setup.sh`"
            ) from exc
        # The engine's transport registry is the one list of them (aliases included).
        known = sorted(name for names, _ in _engine.transports() for name in names)
        if transport not in known:
            raise InvalidInput(f"unknown transport {transport!r}; known: {', '.join(known)}")
        self.workers = workers
        self.transport = transport
        self.batch_timeout = batch_timeout
        self.max_in_flight = max_in_flight
        command = [python or sys.executable, "-m", "quiver.worker"]
        self._engine_args = (
            transport,
            float(batch_timeout),
            float(start_timeout),
        )
        if traceback_locals:  # read by the worker when it formats a UDF's error
            environment = {**(environment or {}), "QUIVER_TRACEBACK_LOCALS": "1"}
        # Kept for the sandboxed runtimes of @quiver.udf(sandbox=...) UDFs (_runtime_for).
        self._python = python
        self._sandbox_read = None if not sandbox else [] if sandbox is True else list(sandbox)
        if sandbox:  # the engine sandboxes every worker it starts (quiver/sandbox.py)
            readable = [] if sandbox is True else list(sandbox)
            environment = {**(environment or {}), **sandbox_environment(python, readable)}
        self._extra_environment = environment
        self._engine: Any = _engine.Engine(
            command,
            *self._engine_args,
            _worker_environment(python, environment),
            workers,
            log_dir,
            float(trace_batches),
        )
        self._runs: weakref.WeakSet[Any] = weakref.WeakSet()
        self._metrics = SessionMetrics()
        # Its runs can be cut off by close(), even while their readers live; their figures
        # add up to metrics().
        self._engine = SessionEngine(self._engine, self._runs, self._metrics)
        self._exports = start_exports(
            self.metrics, prometheus_port, otlp_endpoint, watch_runs=self._metrics.watch
        )
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
        input_format: str | None = None,
    ) -> pa.RecordBatchReader:
        """Run ``udfs`` over ``data`` in the workers; return the results as a stream.

        ``data`` is anything that exports the Arrow C stream (``__arrow_c_stream__``): a
        pyarrow Table, RecordBatch or RecordBatchReader, a Polars DataFrame, a DuckDB relation;
        or a pyarrow Dataset or Scanner. Its columns are not copied: the ones kept beside the
        results are the input's own buffers.

        ``data`` may also be the path of a file, or a list of paths read one after the other:
        Parquet (``.parquet``, ``.pq``), CSV with a header row (``.csv``) or Arrow IPC
        (``.arrow``, ``.feather``, ``.ipc``, ``.arrows``), as ``quiver run`` takes them
        (``input_format="parquet"`` etc. when the extension does not say). The engine reads
        them itself, as the command does: without the GIL, Parquet row groups decoded ahead on
        the cores the workers leave, only the columns the UDFs and ``select`` use, memory
        bounded by a few batches. The fastest way in from files; a missing file names the
        closest one beside it, a malformed one says which file and what is wrong.

        ``udfs`` are :func:`quiver.call` results (a bare function or ``"file.py:func"`` string
        is called on no argument). Each adds one column, named after the UDF, after the input
        columns in ``select`` (default: all of them, ``[]`` for none). Batches larger than
        ``batch_rows`` rows, or whose UDF arguments hold more than ``batch_bytes`` bytes
        (default 4 MiB), are cut (without a copy) before they go to a worker; a single row
        larger than ``batch_bytes`` goes alone.

        The result is a ``pyarrow.RecordBatchReader`` that computes batch by batch as it is
        read, so memory stays flat: read it while the session is open, with pyarrow, Polars
        (``pl.from_arrow``), DuckDB or ``pq.write_table``. Ctrl-C while reading cancels the
        run; the session stays usable. ``session.metrics(result)`` gives its figures (rows,
        batches, bytes, time in the UDFs, per worker; :meth:`metrics`).

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
        exist, a duplicate name, an input file that is missing or not of its format),
        :class:`quiver.SessionClosed`. A failure raises when the batch it happened on is read
        (a file's bad row or row group too); a wrong column, UDF reference or file raises
        here, before any data moves.
        """
        engine = self._engine
        if engine is None or engine.closed():
            raise SessionClosed("this quiver.Session is closed; open a new one")
        if batch_bytes is not None and batch_bytes < 1:
            raise InvalidInput(f"batch_bytes must be at least 1, not {batch_bytes}")
        calls = [u if isinstance(u, UdfCall) else call(u) for u in udfs]
        if not calls:
            raise InvalidInput("Session.map needs at least one UDF in udfs=[...]")
        # UDFs of several environments run in one engine run, each on its environment's
        # workers, as `quiver run` runs several runtimes: the results come back side by side.
        # A UDF declared @quiver.udf(sandbox=...) runs on sandboxed workers of its own.
        engine_calls = [engine_call(c, self._runtime_for(c.requirements, c.sandbox)) for c in calls]
        run = engine.map(
            engine_input(data, "map", input_format),
            engine_calls,
            None if select is None else list(select),
            int(batch_rows),
            self.workers,
            self.max_in_flight,
            None if batch_bytes is None else int(batch_bytes),
        )
        return self._result(run)

    def _runtime_for(
        self, requirements: tuple[str, ...], sandbox: tuple[str, ...] | None = None
    ) -> str:
        """The engine's runtime whose workers run in the environment of ``requirements``
        (added, and the environment made, on first use), sandboxed with read access to
        ``sandbox`` when not None; ``""`` for the session's own."""
        if not requirements and sandbox is None:
            return ""
        name = " ".join(
            (["env:" + " ".join(requirements)] if requirements else [])
            + ([] if sandbox is None else ["sandbox:" + ":".join(sandbox)])
        )
        if not self._engine.has_runtime(name):
            python = self._python
            if requirements:
                from quiver.envs import ensure_env

                python = str(ensure_env(requirements))
            environment = self._extra_environment
            if sandbox is not None:  # refused here, before any worker, if it cannot be had
                readable = [*(self._sandbox_read or []), *sandbox]
                environment = {**(environment or {}), **sandbox_environment(python, readable)}
            self._engine.add_runtime(
                name,
                [python or sys.executable, "-m", "quiver.worker"],
                _env_worker_environment(environment)
                if requirements
                else _worker_environment(python, environment),
            )
        return name

    def _result(self, run: Any, head: Sequence[pa.RecordBatch] = ()) -> pa.RecordBatchReader:
        """The reader of a run (after ``head``, batches read already), remembered so that
        close() can cut it off and metrics() find its figures."""
        self._runs.add(run)
        schema = pa.Schema._import_from_c_capsule(run.schema())
        return self._metrics.reader(run, schema, itertools.chain(head, read_batches(run)))

    def metrics(self, result: pa.RecordBatchReader | None = None) -> dict[str, Any]:
        """The figures of one result (a reader this session returned), or summed over every
        run of the session's life when ``result`` is None; docs/metrics.md defines them.

        ``batches``, ``rows`` and ``bytes_in`` count the input read, ``read_nanos`` the time
        reading it and ``udf_nanos`` the workers' time in UDF bodies; ``groups`` has one entry
        per group of UDFs that run on the same workers (``udfs``: their names), with
        ``batches``, ``rows_in``, ``rows_out``, ``bytes_in``, ``bytes_out``, ``udf_nanos``,
        ``codec_nanos``, ``wait_nanos``, ``peak_rss_bytes``, the UDFs' ``counters`` and the
        same per worker (``workers``), as ``quiver run --metrics FILE`` writes them. A result
        counts as far as it was read; its figures are complete once it was read to its end.

        >>> out = s.map(table, udfs=[quiver.call(shout, "name")])    # doctest: +SKIP
        >>> out.read_all()                                           # doctest: +SKIP
        >>> s.metrics(out)["groups"][0]["rows_out"]                  # doctest: +SKIP
        """
        if result is None:
            return self._metrics.total()
        return self._metrics.of(result)

    @property
    def prometheus_url(self) -> str | None:
        """Where Prometheus scrapes this session (``prometheus_port``), else None."""
        return self._exports.prometheus_url

    @property
    def workers_started(self) -> int:
        """How many worker processes this session has started so far."""
        return self._engine.workers_started() if self._engine is not None else 0

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._engine is None or self._engine.closed()

    def close(self) -> None:
        """Stop the workers, also those of runs whose readers are still alive (reading one
        afterwards raises :class:`quiver.SessionClosed`). Idempotent."""
        engine = self._engine
        if engine is None:
            return
        for run in list(self._runs):
            run.detach()  # drops the engine's run: nothing keeps the worker pool alive
        engine.close()
        self._exports.close()  # after the runs ended: the last export has all their figures
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


def _prepared_log_dir(log_dir: str | os.PathLike[str] | None) -> str:
    """``log_dir`` made (when missing) and checked writable, as ``quiver run --log-dir``
    does; ``""`` for none."""
    if log_dir is None:
        return ""
    path = os.fspath(log_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidInput(f"log_dir {path} is a file, not a directory; name a directory")
    try:
        os.makedirs(path, exist_ok=True)
        # A probe file, since os.access says yes to root on a read-only file system.
        probe = os.path.join(path, f".quiver-log-probe-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise InvalidInput(
            f"log_dir {path} cannot be written ({exc.strerror}); name a directory you may write"
        ) from None
    return os.path.abspath(path)


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


_open_sessions: weakref.WeakSet[Session] = weakref.WeakSet()


@atexit.register
def _close_open_sessions() -> None:
    """Stop every session's workers when the interpreter exits."""
    for session in list(_open_sessions):
        session.close()
