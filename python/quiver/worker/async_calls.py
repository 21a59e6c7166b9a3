"""The asyncio side of call policies: async row UDFs N at a time, async batch UDFs, cancellation.

Imported only when an ``async def`` UDF runs (asyncio is slow to import), by the evaluators
(worker/evaluators.py). It uses :mod:`quiver.worker.call_policy` (how a call is judged) and is
never imported by it.

A row UDF's calls run in a :class:`LanePool`: N lanes on this thread's loop that take rows in
arrival order from every batch handed to the pool, so that when several batches are in flight
(:func:`run_overlapped`) the lanes go on with the next batch while the last rows of one wait.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
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
# How often batches in flight look for the engine's next batch while their calls wait.
_INPUT_POLL_SECONDS = 0.002


# ---- many rows of many batches, N at a time ----


class _BatchRows:
    """One batch's rows handed to a pool, and the future of their outcomes."""

    def __init__(self, args: Sequence[tuple], done: asyncio.Future) -> None:
        self.args = args
        self.outcomes: list[Outcome] = [(None, None)] * len(args)
        self.issued = 0  # rows handed to a lane so far
        self.left = len(args)  # rows not finished yet
        self.done = done


class LanePool:
    """Up to ``lanes`` calls of one UDF at once on this thread's loop, across batches.

    Batches queue in the order they are submitted and each lane takes the next row of the oldest
    batch with rows left, so results land in row order per batch and at most ``lanes`` rows of
    all the batches are in flight. A lane ends when no row is left; submitting starts lanes again.
    """

    def __init__(self, runner: PolicyRunner, func: Callable[..., Any], lanes: int) -> None:
        self.runner = runner
        self.func = func
        self.lanes = max(lanes, 1)
        self._queue: deque[_BatchRows] = deque()
        self._tasks: set[asyncio.Task] = set()

    def submit(self, args: Sequence[tuple]) -> asyncio.Future:
        """Queue one batch's rows; the future gives their outcomes in row order."""
        loop = asyncio.get_running_loop()
        batch = _BatchRows(args, loop.create_future())
        if not args:
            batch.done.set_result([])
            return batch.done
        self._queue.append(batch)
        # A lane per row waiting, up to ``lanes`` in all (one that finds no row left just ends).
        for _ in range(min(self.lanes - len(self._tasks), self._rows_waiting())):
            task = loop.create_task(self._lane())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return batch.done

    def _rows_waiting(self) -> int:
        """Count the queued rows no lane has taken yet."""
        return sum(len(batch.args) - batch.issued for batch in self._queue)

    async def _lane(self) -> None:
        """Take the next row until none is left; a failure fails that row's batch only."""
        while self._queue:
            batch = self._queue[0]
            index = batch.issued
            batch.issued += 1
            if batch.issued == len(batch.args):
                self._queue.popleft()
            if batch.done.done():
                continue  # the batch failed already: its other rows are not called
            try:
                batch.outcomes[index] = await call(self.runner, self.func, batch.args[index], index)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # on_error="raise": the batch fails with the row's error
                if not batch.done.done():
                    batch.done.set_exception(exc)
                continue
            batch.left -= 1
            if batch.left == 0 and not batch.done.done():
                batch.done.set_result(batch.outcomes)

    async def cancel(self) -> None:
        """Cancel the calls in flight and forget the queued rows."""
        self._queue.clear()
        await _cancel_all(list(self._tasks))


async def rows(
    runner: PolicyRunner, func: Callable[..., Any], args: Sequence[tuple], lanes: int
) -> list[Outcome]:
    """Run the rows' calls ``lanes`` at a time; cancel the others when one fails the batch."""
    pool = LanePool(runner, func, lanes)
    try:
        return await pool.submit(args)
    finally:
        # A row that raised (on_error="raise") or a cancellation: stop the other calls.
        await pool.cancel()


async def call(
    runner: PolicyRunner, func: Callable[..., Any], args: tuple, row: int | None
) -> Outcome:
    """Await an async function, with the per-call timeout, retrying as the policy says."""
    attempt = 0
    while True:
        attempt += 1
        runner.counts.calls += 1
        try:
            return await _attempt(runner, func, args), None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the UDF's error, judged by the policy
            wait = runner.retry_wait(exc, attempt)
            if wait is None:
                return runner.failed(exc, row)
        await asyncio.sleep(wait)


async def _attempt(runner: PolicyRunner, func: Callable[..., Any], args: tuple) -> Any:
    """Make one call and await its result, within the policy's timeout when there is one."""
    timeout = runner.policy.timeout
    if timeout is None:
        return await _awaited(func(*args))
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            return await _awaited(func(*args))
    except TimeoutError:
        if scope.expired():  # ours, not a TimeoutError the UDF raised itself
            runner.counts.timeouts += 1
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


# ---- the loop ----

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


# ---- several batches in flight ----


class BatchFailed(Exception):
    """A batch of an overlapped run failed: ``cause`` is its error, ``sequence`` the batch."""

    def __init__(self, sequence: int, cause: BaseException) -> None:
        super().__init__(sequence, cause)
        self.sequence = sequence
        self.cause = cause


def run_overlapped(
    first: tuple[int, Any],
    start: Callable[[Any], Awaitable[Any]],
    take_next: Callable[[], tuple[int, Any] | None],
    answer: Callable[[int, Any], None],
    cancel_ahead: Callable[[], bool],
    most_in_flight: int,
    on_stop: Callable[[], Awaitable[None]],
) -> None:
    """Run batches at once on this thread's loop and answer them strictly in order.

    ``first`` is (sequence, body) of the batch that arrived; ``take_next`` returns the next batch
    the engine has already sent, or None when none waits (it never blocks); ``start`` makes a
    batch's coroutine and ``answer`` sends its result. Batches are taken while fewer than
    ``most_in_flight`` run; the run ends when every batch taken was answered and no other waits.

    Raises BatchFailed for the first batch that fails (later ones are dropped), BatchCancelled
    when a Cancel arrives behind the batches. ``on_stop`` cancels the calls still pending
    (their connections closed) before either leaves.
    """
    _run_or_stop(
        _overlapped(first, start, take_next, answer, cancel_ahead, most_in_flight), on_stop
    )


def _run_or_stop(
    coroutine: Coroutine[Any, Any, Any], on_stop: Callable[[], Awaitable[None]]
) -> Any:
    """Run ``coroutine`` on this thread's loop; on any way out but success, run ``on_stop``."""
    loop = event_loop()
    task = loop.create_task(coroutine)
    try:
        return loop.run_until_complete(task)
    except BaseException:
        if not task.done():
            task.cancel()
        loop.run_until_complete(asyncio.wait([task], timeout=_CANCEL_GRACE_SECONDS))
        stopping = loop.create_task(on_stop())  # type: ignore[arg-type]
        loop.run_until_complete(asyncio.wait([stopping], timeout=_CANCEL_GRACE_SECONDS))
        raise


async def _overlapped(
    first: tuple[int, Any],
    start: Callable[[Any], Awaitable[Any]],
    take_next: Callable[[], tuple[int, Any] | None],
    answer: Callable[[int, Any], None],
    cancel_ahead: Callable[[], bool],
    most_in_flight: int,
) -> None:
    """The body of :func:`run_overlapped`."""
    loop = asyncio.get_running_loop()
    in_flight: deque[tuple[int, asyncio.Task]] = deque()

    def begin(sequence: int, body: Any) -> None:
        in_flight.append((sequence, loop.create_task(_as_coroutine(start(body)))))

    begin(*first)
    last_cancel_check = loop.time()
    try:
        while in_flight:
            while len(in_flight) < most_in_flight and (ready := take_next()) is not None:
                begin(*ready)
            sequence, head = in_flight[0]
            if head.done():
                in_flight.popleft()
                if head.exception() is not None:
                    raise BatchFailed(sequence, head.exception())  # type: ignore[arg-type]
                answer(sequence, head.result())
                continue
            room = len(in_flight) < most_in_flight
            poll = _INPUT_POLL_SECONDS if room else _CANCEL_POLL_SECONDS
            await asyncio.wait([head], timeout=poll)
            if loop.time() - last_cancel_check >= _CANCEL_POLL_SECONDS or not room:
                last_cancel_check = loop.time()
                if cancel_ahead():
                    raise BatchCancelled
    finally:
        await _cancel_all([task for _, task in in_flight])


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    """Wrap an awaitable so that it can become a task."""
    return await awaitable
