"""What lets ``quiver.Session.close()`` stop its workers while result readers are still alive.

A reader (``pyarrow.RecordBatchReader``) keeps its engine run, and the run keeps the session's
worker pool, for as long as the user holds the reader. The session therefore hands out runs
through :class:`SessionRun`, which :meth:`SessionRun.detach` cuts from the engine's run: the run
is dropped (its workers go back to the pool, and the pool, closed, stops them), and a later read
raises :class:`quiver.SessionClosed` instead of waiting on workers that are gone.

A run's figures (docs/metrics.md) are taken when it ends (read to its end, cancelled, collected
or cut off) and added to the session's :class:`SessionMetrics`; ``Session.metrics(reader)`` finds
the run of a reader there.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from quiver.errors import SessionClosed

# The engine's methods that start a run.
_RUN_METHODS = frozenset({"map", "apply", "aggregate", "flat_map"})


class SessionRun:
    """An engine run as a session's reader sees it, until the session closes."""

    def __init__(
        self, run: Any, on_end: Callable[[dict[str, Any], SessionRun], None], kind: str = "map"
    ) -> None:
        self._run: Any = run
        self.kind = kind  # the engine's method that started it
        self.started_ns = time.time_ns()
        self._lock = threading.Lock()
        self._on_end = on_end
        self._final: dict[str, Any] | None = None  # the figures, once the run ended

    def _current(self) -> Any:
        run = self._run
        if run is None:
            raise SessionClosed(
                "this result was not read before its quiver.Session was closed; read (or "
                "collect) results inside the session's `with` block"
            )
        return run

    def read_next(self) -> Any:
        """Return the run's next batch; raise SessionClosed once the session is closed."""
        return self._current().read_next()

    def cancel(self) -> None:
        """End the run (no error once detached); its figures go to the session's."""
        run = self._run
        if run is not None:
            run.cancel()
            self._end(run)

    def detach(self) -> None:
        """Cancel the run and drop it: nothing of the session's engine stays reachable."""
        with self._lock:
            run, self._run = self._run, None
        if run is not None:
            run.cancel()
            self._end(run)

    def metrics(self) -> dict[str, Any]:
        """The run's figures: final once it ended, else as far as it was read."""
        final = self._final
        if final is not None:
            return final
        run = self._run
        return run.metrics() if run is not None else empty_metrics()

    def _end(self, run: Any) -> None:
        figures = run.metrics()
        with self._lock:
            if self._final is not None:
                return
            self._final = figures
        self._on_end(figures, self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._current(), name)


class SessionEngine:
    """The engine of a session, whose runs come as :class:`SessionRun` and are remembered."""

    def __init__(self, engine: Any, runs: Any, metrics: SessionMetrics) -> None:
        self._engine = engine
        self._runs = runs
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._engine, name)
        if name not in _RUN_METHODS:
            return attribute

        def start_run(*args: Any, **kwargs: Any) -> SessionRun:
            run = SessionRun(attribute(*args, **kwargs), self._metrics.add, name)
            self._runs.add(run)
            return run

        return start_run


class SessionMetrics:
    """The figures of a session's runs: each run's by its reader, and their sum."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = empty_metrics()
        self._runs: weakref.WeakKeyDictionary[pa.RecordBatchReader, SessionRun] = (
            weakref.WeakKeyDictionary()
        )
        self._live: weakref.WeakSet[SessionRun] = weakref.WeakSet()
        self._watchers: list[Callable[[SessionRun | None, dict[str, Any]], None]] = []

    def watch(self, watcher: Callable[[SessionRun | None, dict[str, Any]], None]) -> None:
        """Call ``watcher(run, figures)`` as each run ends (quiver.export's spans)."""
        self._watchers.append(watcher)

    def reader(self, run: SessionRun, schema: pa.Schema, batches: Any) -> pa.RecordBatchReader:
        """A reader of ``batches``, whose figures are those of ``run``."""
        reader = pa.RecordBatchReader.from_batches(schema, batches)
        with self._lock:
            self._runs[reader] = run
            self._live.add(run)
        return reader

    def add(self, figures: dict[str, Any], run: SessionRun | None = None) -> None:
        """Add the final figures of a run that ended."""
        with self._lock:
            self._total = summed(self._total, figures)
        for watcher in self._watchers:
            watcher(run, figures)

    def of(self, reader: pa.RecordBatchReader) -> dict[str, Any]:
        """The figures of the run behind ``reader``."""
        with self._lock:
            run = self._runs.get(reader)
        if run is None:
            raise ValueError("this reader is not a result of this quiver.Session")
        return run.metrics()

    def total(self) -> dict[str, Any]:
        """The sum of every run's figures: those that ended, and the live ones so far."""
        with self._lock:
            total = self._total
            live = [run for run in self._live if run._final is None]
        for run in live:
            total = summed(total, run.metrics())
        return total


# The figures of a run that are summed as they are; the others are per group and worker.
_RUN_FIGURES = ("batches", "rows", "bytes_in", "read_nanos", "udf_nanos")


def empty_metrics() -> dict[str, Any]:
    """The figures of no run at all."""
    return {**dict.fromkeys(_RUN_FIGURES, 0), "groups": []}


def summed(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The figures of two runs together: groups of the same UDFs, and workers of the same
    name, add up (``peak_rss_bytes``: the larger)."""
    out = {name: a.get(name, 0) + b.get(name, 0) for name in _RUN_FIGURES}
    out["groups"] = _merged(a["groups"], b["groups"], "udfs")
    return out


def _merged(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    by_key: dict[Any, dict[str, Any]] = {}
    for entry in [*a, *b]:
        name = tuple(entry[key]) if isinstance(entry[key], list) else entry[key]
        if name in by_key:
            by_key[name] = _added(by_key[name], entry)
        else:
            by_key[name] = entry
    return list(by_key.values())


def _added(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for name, value in b.items():
        if name == "peak_rss_bytes":
            out[name] = max(a.get(name, 0), value)
        elif name == "counters":
            counters = dict(a.get(name, {}))
            for counter, count in value.items():
                counters[counter] = counters.get(counter, 0) + count
            out[name] = counters
        elif name == "workers":
            out[name] = _merged(a.get(name, []), value, "worker")
        elif isinstance(value, int) and name not in ("udfs", "worker"):
            out[name] = a.get(name, 0) + value
    return out
