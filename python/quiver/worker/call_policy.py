"""Run a UDF's calls under its policy: retries with back-off, per-call timeout, failing rows.

Row UDFs (scalar_row) are called once per row; an ``async def`` one runs up to
``max_concurrency`` calls at once on this thread's event loop, in a fixed number of lanes that
each take the next row, so that at most that many rows are in flight and results land in row
order. A row that still fails after its retries either fails the batch (``on_error="raise"``)
or becomes null with its error text kept (``on_error="null"``). See docs/async-udfs.md.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from quiver.retry import CallPolicy, Retry, RetryAfter
from quiver.udf import check_policy_fits
from quiver.worker.errors import WorkerError, error_class_name

# How long calls still pending after an interruption (SIGTERM, Ctrl-C) get to run their
# cancellation handlers (close a connection) before the loop is left as it is.
_CANCEL_GRACE_SECONDS = 1.0


class CallTimedOut(TimeoutError):
    """A call ran longer than its UDF's ``timeout=``."""


@dataclass
class PolicyCounts:
    """What a UDF's policy did in one execution: logged when the execution ends."""

    calls: int = 0
    retries: int = 0
    retry_wait_seconds: float = 0.0
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

    # ---- many rows ----

    def run_rows(self, func: Callable[..., Any], rows: Sequence[tuple]) -> list[Outcome]:
        """Call ``func`` once per row; return each row's outcome, in row order."""
        if not self.is_async:
            return [self._call_sync(func, row, index) for index, row in enumerate(rows)]
        lanes = self.policy.max_concurrency or 1
        return run_on_loop(self._rows_async(func, rows, lanes))

    async def _rows_async(
        self, func: Callable[..., Any], rows: Sequence[tuple], lanes: int
    ) -> list[Outcome]:
        """Run the rows in ``lanes`` tasks, each taking the next row until none are left."""
        outcomes: list[Outcome] = [(None, None)] * len(rows)
        next_rows = iter(range(len(rows)))

        async def lane() -> None:
            for index in next_rows:  # shared: each row goes to exactly one lane
                outcomes[index] = await self._call_async(func, rows[index], index)

        tasks = [asyncio.ensure_future(lane()) for _ in range(min(lanes, len(rows)))]
        try:
            await asyncio.gather(*tasks)
        finally:
            # A row that raised (on_error="raise") or a cancellation: stop the other calls.
            await _cancel_all(tasks)
        return outcomes

    # ---- one call (a row, or a whole batch) ----

    def run_one(self, func: Callable[..., Any], args: Sequence[Any]) -> Outcome:
        """Call ``func`` once (a batch UDF) under the policy."""
        if not self.is_async:
            return self._call_sync(func, tuple(args), None)
        return run_on_loop(self._call_async(func, tuple(args), None))

    def _call_sync(self, func: Callable[..., Any], args: tuple, row: int | None) -> Outcome:
        """Call a plain function, retrying as the policy says."""
        attempt = 0
        while True:
            attempt += 1
            self.counts.calls += 1
            try:
                return func(*args), None
            except Exception as exc:  # noqa: BLE001 - the UDF's error, judged by the policy
                wait = self._retry_wait(exc, attempt)
                if wait is None:
                    return self._failed(exc, row)
            time.sleep(wait)

    async def _call_async(self, func: Callable[..., Any], args: tuple, row: int | None) -> Outcome:
        """Await an async function, with the per-call timeout, retrying as the policy says."""
        attempt = 0
        while True:
            attempt += 1
            self.counts.calls += 1
            try:
                return await self._attempt(func, args), None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the UDF's error, judged by the policy
                wait = self._retry_wait(exc, attempt)
                if wait is None:
                    return self._failed(exc, row)
            await asyncio.sleep(wait)

    async def _attempt(self, func: Callable[..., Any], args: tuple) -> Any:
        """Make one call and await its result, within ``timeout`` when there is one."""
        timeout = self.policy.timeout
        if timeout is None:
            return await _awaited(func(*args))
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                return await _awaited(func(*args))
        except TimeoutError:
            if scope.expired():  # ours, not a TimeoutError the UDF raised itself
                raise CallTimedOut(
                    f"the call took more than {timeout:g} s (timeout={timeout:g}) and was cancelled"
                ) from None
            raise

    def _retry_wait(self, exc: BaseException, attempt: int) -> float | None:
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

    def _failed(self, exc: Exception, row: int | None) -> Outcome:
        """Apply ``on_error`` to a call that failed for good."""
        if row is not None:
            exc.add_note(f"(in row {row} of the batch)")
        if self.policy.on_error == "raise":
            raise exc
        self.counts.rows_failed += 1
        return None, error_text(exc)


def error_text(exc: BaseException) -> str:
    """Describe an error for a ``NAME__error`` column: its class and message."""
    message = str(exc)
    return f"{error_class_name(exc)}: {message}" if message else error_class_name(exc)


async def _awaited(value: Any) -> Any:
    """Await ``value`` when a call returned an awaitable (an async ``__call__``)."""
    return await value if inspect.isawaitable(value) else value


async def _cancel_all(tasks: list[asyncio.Future]) -> None:
    """Cancel the tasks still running and wait until each has ended."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


_loops = threading.local()


def event_loop() -> asyncio.AbstractEventLoop:
    """Return this thread's event loop for async UDFs, made on first use and kept.

    One loop per thread lives as long as the worker, so that what a UDF keeps between calls (a
    connection pool, a client session made in a class UDF) stays on the loop it was made on.
    """
    loop = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop = loop
    return loop


def run_on_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` on this thread's loop; cancel what is pending if anything interrupts it.

    SIGTERM and Ctrl-C reach the worker as an exception raised in the loop's thread; the calls
    still pending are then cancelled (their connections closed) before it propagates, so no
    request outlives the batch.
    """
    loop = event_loop()
    task = loop.create_task(coroutine)
    try:
        return loop.run_until_complete(task)
    finally:
        if not task.done():
            task.cancel()
            loop.run_until_complete(asyncio.wait([task], timeout=_CANCEL_GRACE_SECONDS))


def with_call_options(
    udf_name: str, text: str, declared: CallPolicy, func: Any, eval_type: str
) -> CallPolicy:
    """Apply ``UdfDefinition.call_options`` (a JSON object) over the UDF's declared policy.

    Keys: ``on_error``, ``max_concurrency``, ``timeout`` and ``retries`` (a number of attempts,
    or an object of :class:`quiver.Retry` fields other than ``on``). Anything else, or a value
    the UDF cannot take, is a WorkerError at Init.
    """
    if not text:
        return declared
    try:
        options = json.loads(text)
    except ValueError as exc:
        raise WorkerError(
            f"UDF {udf_name!r}: call_options is not JSON ({exc}): {text[:200]!r}", udf_name
        ) from None
    if not isinstance(options, dict):
        raise WorkerError(
            f"UDF {udf_name!r}: call_options must be a JSON object, not {text[:200]!r}", udf_name
        )
    unknown = sorted(set(options) - {"on_error", "max_concurrency", "timeout", "retries"})
    if unknown:
        raise WorkerError(
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
        raise WorkerError(f"UDF {udf_name!r}: {exc}", udf_name) from None
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
