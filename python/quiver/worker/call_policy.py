"""Run a UDF's calls under its policy: retries with back-off, per-call timeout, failing rows.

(The asyncio side, for ``async def`` UDFs, is in async_calls.py, imported only when one runs;
it uses this module, never the other way round.)

Row UDFs (scalar_row) are called once per row; an ``async def`` one runs up to
``max_concurrency`` calls at once on this thread's event loop, in a fixed number of lanes that
each take the next row, so that at most that many rows are in flight and results land in row
order. A row that still fails after its retries either fails the batch (``on_error="raise"``)
or becomes null with its error text kept (``on_error="null"``). See docs/async-udfs.md.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from quiver.retry import CallPolicy, Retry, RetryAfter
from quiver.udf import check_policy_fits
from quiver.worker.errors import WorkerFailure, error_class_name


class BatchCancelled(BaseException):  # noqa: N818 - it is a signal, not an error
    """A Cancel arrived while the batch's calls were pending; they were cancelled.

    A BaseException, so that it passes the wrapping of the UDF's own errors on its way to the
    worker's state machine, which drops the batch and answers the Cancel.
    """


class CallTimedOut(TimeoutError):
    """A call ran longer than its UDF's ``timeout=``."""


@dataclass
class PolicyCounts:
    """What a UDF's policy did in one execution: logged when the execution ends."""

    calls: int = 0
    retries: int = 0
    retry_wait_seconds: float = 0.0
    timeouts: int = 0
    rows_failed: int = 0


Outcome = tuple[Any, "str | None"]  # (the value, or None; the error text, or None)


class PolicyRunner:
    """Call one UDF's function under its :class:`CallPolicy`."""

    def __init__(self, udf_name: str, policy: CallPolicy, is_async: bool) -> None:
        self.udf_name = udf_name
        self.policy = policy
        self.is_async = is_async
        self.counts = PolicyCounts()
        self._rng = random.Random()
        # The (start, stop) rows of each call when a batch UDF's batch is cut into slices.
        self.slices: list[tuple[int, int]] | None = None

    # ---- plain functions (async ones: worker/async_calls.py) ----

    def run_rows(self, func: Callable[..., Any], rows: Sequence[tuple]) -> list[Outcome]:
        """Call a plain ``func`` once per row; return each row's outcome, in row order."""
        return [self._call_sync(func, row, index) for index, row in enumerate(rows)]

    def run_one(self, func: Callable[..., Any], args: Sequence[Any]) -> Outcome:
        """Call a plain ``func`` once (a batch UDF) under the policy."""
        return self._call_sync(func, tuple(args), None)

    def _call_sync(self, func: Callable[..., Any], args: tuple, row: int | None) -> Outcome:
        """Call a plain function, retrying as the policy says."""
        attempt = 0
        while True:
            attempt += 1
            self.counts.calls += 1
            try:
                return func(*args), None
            except Exception as exc:  # noqa: BLE001 - the UDF's error, judged by the policy
                wait = self.retry_wait(exc, attempt)
                if wait is None:
                    return self.failed(exc, row)
            time.sleep(wait)

    def retry_wait(self, exc: BaseException, attempt: int) -> float | None:
        """Return how long to wait before the next attempt, or None when there is none."""
        retry = self.policy.retries
        if retry is None or attempt >= retry.max_attempts or not retry.retries(exc):
            return None
        if isinstance(exc, RetryAfter):
            wait = exc.seconds
        else:
            wait = retry.delay(attempt, self._rng)
        self.counts.retries += 1
        self.counts.retry_wait_seconds += wait
        return wait

    def failed(self, exc: Exception, row: int | None) -> Outcome:
        """Apply ``on_error`` to a call that failed for good.

        ``row`` is the call's row of the batch, or its slice in :attr:`slices` when set.
        """
        if row is not None:
            exc.add_note(f"(in {self._rows_text(row)} of the batch)")
        if self.policy.on_error == "raise":
            raise exc
        start, stop = self.slices[row] if self.slices and row is not None else (0, 1)
        self.counts.rows_failed += stop - start
        return None, error_text(exc)

    def _rows_text(self, row: int) -> str:
        """Name the rows one call covered: "row 3", or a slice's "rows 2500-4999"."""
        if self.slices is None:
            return f"row {row}"
        start, stop = self.slices[row]
        return f"rows {start}-{stop - 1}"


def error_text(exc: BaseException) -> str:
    """Describe an error for a ``NAME__error`` column: its class and message."""
    message = str(exc)
    return f"{error_class_name(exc)}: {message}" if message else error_class_name(exc)


# This thread's cancel probe, set by cancel_probe while a batch runs.
_loops = threading.local()


def current_probe() -> Callable[[], bool] | None:
    """Return the cancel probe of the batch running on this thread, if any."""
    return getattr(_loops, "probe", None)


@contextlib.contextmanager
def cancel_probe(probe: Callable[[], bool]) -> Iterator[None]:
    """Let async calls made inside the block poll ``probe`` and stop when it says a Cancel came."""
    previous = getattr(_loops, "probe", None)
    _loops.probe = probe
    try:
        yield
    finally:
        _loops.probe = previous


def with_call_options(
    udf_name: str, text: str, declared: CallPolicy, func: Any, eval_type: str
) -> CallPolicy:
    """Apply ``UdfDefinition.call_options`` (a JSON object) over the UDF's declared policy.

    Keys: ``on_error``, ``max_concurrency``, ``timeout`` and ``retries`` (a number of attempts,
    or an object of :class:`quiver.Retry` fields other than ``on``). Anything else, or a value
    the UDF cannot take, is a WorkerFailure at Init.
    """
    if not text:
        return declared
    try:
        options = json.loads(text)
    except ValueError as exc:
        raise WorkerFailure(
            f"UDF {udf_name!r}: call_options is not JSON ({exc}): {text[:200]!r}", udf_name
        ) from None
    if not isinstance(options, dict):
        raise WorkerFailure(
            f"UDF {udf_name!r}: call_options must be a JSON object, not {text[:200]!r}", udf_name
        )
    unknown = sorted(set(options) - {"on_error", "max_concurrency", "timeout", "retries"})
    if unknown:
        raise WorkerFailure(
            f"UDF {udf_name!r}: unknown call option(s) {', '.join(unknown)}; the options are "
            "on_error, max_concurrency, timeout and retries",
            udf_name,
        )
    try:
        if "retries" in options:
            options["retries"] = _retry_from_json(options["retries"])
        policy = declared.replace(**options)
        check_policy_fits(func, eval_type, policy)
    except (TypeError, ValueError) as exc:
        raise WorkerFailure(f"UDF {udf_name!r}: {exc}", udf_name) from None
    return policy


def _retry_from_json(value: Any) -> Retry | None:
    """Read ``retries``: null (none), a number of attempts, or an object of Retry fields."""
    if value is None:
        return None
    if isinstance(value, dict):
        if "on" in value:
            raise ValueError("retries: 'on' (exception classes) can only be given in Python")
        return Retry(**value)
    return Retry(max_attempts=value)
