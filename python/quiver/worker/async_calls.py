"""The asyncio side of call policies: async row UDFs N at a time, async batch UDFs, cancellation.

Imported only when an ``async def`` UDF runs (asyncio is slow to import), by
:class:`quiver.worker.call_policy.PolicyRunner`.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from quiver.worker.call_policy import (
    BatchCancelled,
    CallTimedOut,
    Outcome,
    PolicyRunner,
    current_probe,
)

# How long calls still pending after an interruption (SIGTERM, Ctrl-C) get to run their
# cancellation handlers (close a connection) before the loop is left as it is.
_CANCEL_GRACE_SECONDS = 1.0
# How often a batch's pending calls look for a Cancel from the engine behind the batch.
_CANCEL_POLL_SECONDS = 0.05


async def rows(
    runner: PolicyRunner, func: Callable[..., Any], args: Sequence[tuple], lanes: int
) -> list[Outcome]:
    """Run the rows' calls in ``lanes`` tasks, each taking the next row until none are left."""
    outcomes: list[Outcome] = [(None, None)] * len(args)
    next_rows = iter(range(len(args)))

    async def lane() -> None:
        for index in next_rows:  # shared: each row goes to exactly one lane
            outcomes[index] = await call(runner, func, args[index], index)

    tasks = [asyncio.ensure_future(lane()) for _ in range(min(lanes, len(args)))]
    try:
        await asyncio.gather(*tasks)
    finally:
        # A row that raised (on_error="raise") or a cancellation: stop the other calls.
        await _cancel_all(tasks)
    return outcomes


async def call(
    runner: PolicyRunner, func: Callable[..., Any], args: tuple, row: int | None
) -> Outcome:
    """Await an async function, with the per-call timeout, retrying as the policy says."""
    attempt = 0
    while True:
        attempt += 1
        runner.counts.calls += 1
        try:
            return await _attempt(runner.policy.timeout, func, args), None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the UDF's error, judged by the policy
            wait = runner.retry_wait(exc, attempt)
            if wait is None:
                return runner.failed(exc, row)
        await asyncio.sleep(wait)


async def _attempt(timeout: float | None, func: Callable[..., Any], args: tuple) -> Any:
    """Make one call and await its result, within ``timeout`` when there is one."""
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


async def _awaited(value: Any) -> Any:
    """Await ``value`` when a call returned an awaitable (an async ``__call__``)."""
    return await value if inspect.isawaitable(value) else value


async def _cancel_all(tasks: list[asyncio.Future]) -> None:
    """Cancel the tasks still running and wait until each has ended."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# This thread's event loop, once an async UDF ran on it.
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

    SIGTERM and Ctrl-C reach the worker as an exception raised in the loop's thread; a Cancel
    from the engine is seen by polling the probe of :func:`cancel_probe` (BatchCancelled). The
    calls still pending are then cancelled (their connections closed) before either propagates,
    so no request outlives the batch.
    """
    loop = event_loop()
    task = loop.create_task(coroutine)
    probe = current_probe()
    cancelled_by_engine: list[bool] = []
    watcher = loop.create_task(_watch(probe, task, cancelled_by_engine)) if probe else None
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        if cancelled_by_engine:
            raise BatchCancelled from None
        raise
    finally:
        pending = [t for t in (task, watcher) if t is not None and not t.done()]
        for waiting in pending:
            waiting.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=_CANCEL_GRACE_SECONDS))


async def _watch(probe: Callable[[], bool], task: asyncio.Task, seen: list[bool]) -> None:
    """Cancel ``task`` as soon as ``probe`` reports a Cancel from the engine."""
    while not task.done():
        await asyncio.sleep(_CANCEL_POLL_SECONDS)
        if probe():
            seen.append(True)
            task.cancel()
            return
