"""What lets ``quiver.Session.close()`` stop its workers while result readers are still alive.

A reader (``pyarrow.RecordBatchReader``) keeps its engine run, and the run keeps the session's
worker pool, for as long as the user holds the reader. The session therefore hands out runs
through :class:`SessionRun`, which :meth:`SessionRun.detach` cuts from the engine's run: the run
is dropped (its workers go back to the pool, and the pool, closed, stops them), and a later read
raises :class:`quiver.SessionClosed` instead of waiting on workers that are gone.
"""

from __future__ import annotations

import threading
from typing import Any

from quiver.errors import SessionClosed

# The engine's methods that start a run.
_RUN_METHODS = frozenset({"map", "apply", "aggregate", "flat_map"})


class SessionRun:
    """An engine run as a session's reader sees it, until the session closes."""

    def __init__(self, run: Any) -> None:
        self._run: Any = run
        self._lock = threading.Lock()

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
        """End the run (no error once detached)."""
        run = self._run
        if run is not None:
            run.cancel()

    def detach(self) -> None:
        """Cancel the run and drop it: nothing of the session's engine stays reachable."""
        with self._lock:
            run, self._run = self._run, None
        if run is not None:
            run.cancel()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._current(), name)


class SessionEngine:
    """The engine of a session, whose runs come as :class:`SessionRun` and are remembered."""

    def __init__(self, engine: Any, runs: Any) -> None:
        self._engine = engine
        self._runs = runs

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._engine, name)
        if name not in _RUN_METHODS:
            return attribute

        def start_run(*args: Any, **kwargs: Any) -> SessionRun:
            run = SessionRun(attribute(*args, **kwargs))
            self._runs.add(run)
            return run

        return start_run
