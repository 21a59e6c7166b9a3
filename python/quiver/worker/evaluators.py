"""Call a UDF the way its eval type says, and turn what it returns into an Arrow array.

Each evaluator splits a call into ``prepare`` (convert the arguments; worker code), ``call``
(the user's code, timed as UDF time) and the shared :func:`coerce_result`. What a UDF receives
and what it may return is the type contract of docs/types.md.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from quiver.retry import CallPolicy
from quiver.types import converts_exactly, plain_type
from quiver.udf import SCALAR_ARROW, SCALAR_ARROW_ITER, SCALAR_PANDAS, SCALAR_ROW
from quiver.worker.call_policy import PolicyCounts, PolicyRunner
from quiver.worker.errors import WorkerFailure


class ArrowEvaluator:
    """scalar_arrow: ``f(pa.Array, ...)`` once per batch."""

    # Has call_async: the calls of several batches in flight may share its lanes.
    overlaps = False
    # Must run one batch at a time, on the loop alone (async batch UDFs, iterator UDFs).
    blocks_overlap = False

    def __init__(
        self,
        func: Callable[..., Any],
        udf_name: str,
        session_time_zone: str,
        decode: bool = True,
    ) -> None:
        self.func = func
        self.udf_name = udf_name
        # pandas evaluators convert zoned timestamps to it; Arrow UDFs get them as they are.
        self.session_time_zone = session_time_zone
        self.decode = decode

    def prepare(self, args: list[pa.Array]) -> list[Any]:
        """Pass the Arrow arrays, decoded to their plain layout unless the UDF keeps them."""
        if not self.decode:
            return args
        return [self._decoded(arg) for arg in args]

    def _decoded(self, arg: pa.Array) -> pa.Array:
        """Return ``arg`` in its plain layout (dictionaries and views decoded)."""
        plain = plain_type(arg.type)
        if plain == arg.type:
            return arg
        try:
            if pa.types.is_run_end_encoded(arg.type):
                return self._decoded(pc.run_end_decode(arg))
            return arg.cast(plain)
        except pa.ArrowException as exc:
            raise WorkerFailure(
                f"cannot decode argument of type {arg.type} for UDF {self.udf_name!r} to "
                f"{plain}: {exc}; declare the UDF with decode=False to receive it as it is",
                self.udf_name,
            ) from exc

    def call(self, args: list[Any]) -> Any:
        """Call the UDF on one batch's arguments."""
        return self.func(*args)

    def finish(self) -> None:
        """Do nothing: a per-batch UDF keeps no state between batches."""

    def close(self) -> None:
        """Do nothing: a per-batch UDF keeps no state between batches."""

    @property
    def keeps_errors(self) -> bool:
        """Tell whether the UDF has a ``NAME__error`` column (``on_error="null"``)."""
        return False

    def take_errors(self, num_rows: int) -> pa.Array:
        """Return the error text of each row of the last batch (null: no error), and forget it."""
        return pa.nulls(num_rows, pa.string())

    @property
    def policy_counts(self) -> PolicyCounts | None:
        """Return what the call policy did so far (None: the UDF has none)."""
        return None


class PandasEvaluator(ArrowEvaluator):
    """scalar_pandas: ``f(pd.Series, ...)`` once per batch."""

    def prepare(self, args: list[pa.Array]) -> list[Any]:
        """Convert each argument (decoded unless the UDF keeps it) to a pandas Series."""
        arrays = super().prepare(args)
        try:
            return [self._to_series(arg) for arg in arrays]
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise WorkerFailure(
                f"cannot convert the arguments of UDF {self.udf_name!r} to pandas: {exc}",
                self.udf_name,
            ) from exc

    def _to_series(self, arg: pa.Array) -> Any:
        """Convert one array; move zoned timestamps to the session time zone.

        Integers and bools with nulls become pandas' nullable dtypes (Int64, boolean) rather
        than float64 with NaN or object: float64 would round integers above 2**53.
        """
        mapper = _nullable_dtype if arg.null_count and _has_nullable_dtype(arg.type) else None
        series = arg.to_pandas(types_mapper=mapper)
        if self.session_time_zone and pa.types.is_timestamp(arg.type) and arg.type.tz:
            series = series.dt.tz_convert(self.session_time_zone)
        return series


class _BatchFeeder(Iterator[tuple]):
    """The iterator a scalar_arrow_iter UDF reads: it holds at most the current batch."""

    def __init__(self, udf_name: str) -> None:
        self.udf_name = udf_name
        self._current: tuple | None = None
        self._ended = False

    @property
    def holds_batch(self) -> bool:
        """Tell whether the current batch has not been taken yet."""
        return self._current is not None

    def put(self, args: tuple) -> None:
        """Offer the next batch's arguments."""
        self._current = args

    def end(self) -> None:
        """Mark the end of the input: the next read stops the UDF's loop."""
        self._ended = True

    def __next__(self) -> tuple:
        """Hand out the current batch; stop at the end; refuse to read ahead."""
        if self._current is not None:
            args, self._current = self._current, None
            return args
        if self._ended:
            raise StopIteration
        # Batches are answered one by one, so a UDF that reads ahead would wait forever.
        raise WorkerFailure(
            f"UDF {self.udf_name!r} (scalar_arrow_iter) asked for the next batch before yielding "
            "the result of the current one; it must yield exactly one array per input batch",
            self.udf_name,
        )


class ArrowIterEvaluator(ArrowEvaluator):
    """scalar_arrow_iter: ``f(Iterator[tuple[pa.Array, ...]])`` once per execution.

    The UDF runs lazily: each batch is offered to its iterator and one result pulled out.
    """

    blocks_overlap = True  # one generator fed batch after batch

    def __init__(
        self,
        func: Callable[..., Any],
        udf_name: str,
        session_time_zone: str,
        decode: bool = True,
    ) -> None:
        super().__init__(func, udf_name, session_time_zone, decode)
        self._feeder = _BatchFeeder(udf_name)
        self._results: Iterator[Any] | None = None

    def call(self, args: list[Any]) -> Any:
        """Offer one batch to the UDF's iterator and return the array it yields for it."""
        self._feeder.put(tuple(args))
        results = self._start()
        try:
            result = next(results)
        except StopIteration:
            raise WorkerFailure(
                f"UDF {self.udf_name!r} (scalar_arrow_iter) stopped yielding before its input "
                "ended; it must yield exactly one array per input batch",
                self.udf_name,
            ) from None
        if self._feeder.holds_batch:
            raise WorkerFailure(
                f"UDF {self.udf_name!r} (scalar_arrow_iter) yielded a result before reading its "
                "input batch; it must yield exactly one array per input batch",
                self.udf_name,
            )
        return result

    def _start(self) -> Iterator[Any]:
        """Call the UDF on the first batch (this is when its setup code runs)."""
        if self._results is None:
            returned = self.func(self._feeder)
            if not hasattr(returned, "__next__"):
                raise WorkerFailure(
                    f"UDF {self.udf_name!r} (scalar_arrow_iter) returned "
                    f"{type(returned).__name__}, not an iterator; write it as a generator that "
                    "yields one array per input batch",
                    self.udf_name,
                )
            self._results = returned
        return self._results

    def finish(self) -> None:
        """End the input and let the UDF run to its end (its teardown code runs here)."""
        if self._results is None:
            return
        self._feeder.end()
        try:
            next(self._results)
        except StopIteration:
            return
        finally:
            self._results = None
        raise WorkerFailure(
            f"UDF {self.udf_name!r} (scalar_arrow_iter) yielded more arrays than it got batches",
            self.udf_name,
        )

    def close(self) -> None:
        """Stop the UDF's generator early (its ``finally`` blocks run)."""
        results, self._results = self._results, None
        close = getattr(results, "close", None)
        if close is not None:
            close()


def returns_coroutine(func: Callable[..., Any]) -> bool:
    """Tell whether calling ``func`` (a function, or a class UDF's instance) gives a coroutine."""
    if inspect.iscoroutinefunction(func):
        return True
    if inspect.isfunction(func) or inspect.ismethod(func):
        return False
    return inspect.iscoroutinefunction(type(func).__call__)


class _PolicyEvaluatorBase(ArrowEvaluator):
    """What the row and policy evaluators share: a runner and the last batch's errors."""

    def _start_policy(self, policy: CallPolicy, return_type: pa.DataType) -> None:
        self.policy = policy
        self.return_type = return_type
        self.runner = PolicyRunner(self.udf_name, policy, returns_coroutine(self.func))
        self._errors: list[str | None] = []

    @property
    def keeps_errors(self) -> bool:
        """Tell whether the UDF has a ``NAME__error`` column (``on_error="null"``)."""
        return self.policy.on_error == "null"

    def take_errors(self, num_rows: int) -> pa.Array:
        """Return the error text of each row of the last batch (null: no error), and forget it."""
        errors, self._errors = self._errors, []
        if len(errors) != num_rows:
            return pa.nulls(num_rows, pa.string())
        return pa.array(errors, pa.string())

    @property
    def policy_counts(self) -> PolicyCounts | None:
        """Return what the call policy did so far."""
        return self.runner.counts


class RowEvaluator(_PolicyEvaluatorBase):
    """scalar_row: ``f(value, ...)`` once per row, with Python values (None for a null).

    A plain function is called row after row; an ``async def`` runs ``max_concurrency`` rows
    at once. Returns the batch's results as an array of the return type.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        udf_name: str,
        session_time_zone: str,
        decode: bool = True,
        policy: CallPolicy | None = None,
        return_type: pa.DataType | None = None,
    ) -> None:
        super().__init__(func, udf_name, session_time_zone, decode)
        self._start_policy(policy or CallPolicy(), return_type or pa.null())
        self._pool: Any = None  # async_calls.LanePool, made on the loop on first use

    def prepare(self, args: list[pa.Array]) -> list[Any]:
        """Turn the argument columns into one tuple of Python values per row."""
        if not args:
            raise WorkerFailure(
                f"UDF {self.udf_name!r} is called once per row (scalar_row) but has no "
                "arguments, so it cannot tell the rows apart; give it a column",
                self.udf_name,
            )
        columns = [arg.to_pylist() for arg in super().prepare(args)]
        return list(zip(*columns, strict=True))

    def call(self, args: list[Any]) -> Any:
        """Call the UDF on every row; keep the errors of rows that failed under on_error=null."""
        if self.runner.is_async:
            from quiver.worker import async_calls  # asyncio is slow to import: only when used

            lanes = self.policy.max_concurrency or 1
            running = async_calls.rows(self.runner, self.func, args, lanes)
            outcomes = async_calls.run_on_loop(running)
        else:
            outcomes = self.runner.run_rows(self.func, args)
        return self._from_outcomes(outcomes)

    @property
    def overlaps(self) -> bool:
        """Tell whether calls of several batches may share the lanes (an async row UDF)."""
        return self.runner.is_async

    async def call_async(self, args: list[Any]) -> tuple[Any, pa.Array | None]:
        """Call an async UDF on every row in the lanes shared by the batches in flight.

        Returns the values and, under on_error=null, the rows' errors (the batches in flight
        interleave, so they are not kept on the evaluator as :meth:`take_errors` expects).
        """
        from quiver.worker import async_calls

        if self._pool is None:
            lanes = self.policy.max_concurrency or 1
            self._pool = async_calls.LanePool(self.runner, self.func, lanes)
        outcomes = await self._pool.submit(args)
        values = self._from_outcomes(outcomes)
        errors = self.take_errors(len(args)) if self.keeps_errors else None
        return values, errors

    async def stop_calls(self) -> None:
        """Cancel the calls still pending in the shared lanes (a Cancel, a failed batch)."""
        if self._pool is not None:
            await self._pool.cancel()

    def _from_outcomes(self, outcomes: list[tuple[Any, str | None]]) -> Any:
        """Split the outcomes into values (converted) and the rows' errors."""
        values = [value for value, _ in outcomes]
        self._errors = [error for _, error in outcomes]
        return self._to_array(values)

    def _to_array(self, values: list[Any]) -> Any:
        """Convert the values; under on_error=null a value that does not convert fails its row."""
        try:
            return pa.array(values, type=self.return_type)
        except _CONVERSION_ERRORS:
            if not self.keeps_errors:
                return values  # coerce_result names the first row that does not fit
        for row, value in enumerate(values):
            try:
                pa.array([value], type=self.return_type)
            except _CONVERSION_ERRORS as exc:
                values[row] = None
                self._errors[row] = (
                    f"{type(exc).__name__}: returned {_value_text(value)}, which does not "
                    f"convert to the return type {self.return_type}: {exc}"
                )
                self.runner.counts.rows_failed += 1
        return pa.array(values, type=self.return_type)


class PolicyBatchEvaluator(_PolicyEvaluatorBase):
    """A batch UDF (scalar_arrow, scalar_pandas) that is async, retried or keeps errors.

    The batch is one call, or, for an async UDF with ``max_concurrency`` N > 1, N calls on
    slices of nearly equal rows awaited at once; each call is retried as a whole, and under
    on_error=null all its rows are null with the same error when it fails for good.
    """

    def __init__(self, inner: ArrowEvaluator, policy: CallPolicy, return_type: pa.DataType) -> None:
        super().__init__(inner.func, inner.udf_name, inner.session_time_zone, inner.decode)
        self.inner = inner
        self._start_policy(policy, return_type)
        self._rows = 0

    @property
    def blocks_overlap(self) -> bool:
        """An async batch UDF runs its slices on the loop alone, one batch at a time."""
        return self.runner.is_async

    def prepare(self, args: list[pa.Array]) -> list[Any]:
        """Convert the arguments the way the wrapped evaluator does."""
        self._rows = len(args[0]) if args else 0
        return self.inner.prepare(args)

    def call(self, args: list[Any]) -> Any:
        """Call the UDF on the batch (or its slices) under the policy."""
        lanes = self.policy.max_concurrency or 1
        if self.runner.is_async and lanes > 1 and self._rows > 1 and args:
            return self._call_slices(args, lanes)
        if self.runner.is_async:
            from quiver.worker import async_calls

            value, error = async_calls.run_on_loop(
                async_calls.call(self.runner, self.func, tuple(args), None)
            )
        else:
            value, error = self.runner.run_one(self.func, args)
        if error is None:
            self._errors = [None] * self._rows
            return value
        self.runner.counts.rows_failed += self._rows - 1  # the call counted as one row
        self._errors = [error] * self._rows
        return pa.nulls(self._rows, self.return_type)

    def _call_slices(self, args: list[Any], lanes: int) -> pa.Array:
        """Await the UDF on ``lanes`` slices of the batch at once; join the results in order."""
        size = -(-self._rows // lanes)  # ceiling: at most ``lanes`` slices
        slices = [(start, min(start + size, self._rows)) for start in range(0, self._rows, size)]
        calls = [tuple(_rows_of(arg, start, stop) for arg in args) for start, stop in slices]
        from quiver.worker import async_calls

        self.runner.slices = slices  # failed() names a call's rows by its slice
        try:
            outcomes = async_calls.run_on_loop(
                async_calls.rows(self.runner, self.func, calls, lanes)
            )
        finally:
            self.runner.slices = None
        arrays: list[pa.Array] = []
        self._errors = []
        for (start, stop), (value, error) in zip(slices, outcomes, strict=True):
            rows = stop - start
            if error is None:
                arrays.append(coerce_result(value, self.return_type, self.udf_name, rows))
            else:
                arrays.append(pa.nulls(rows, self.return_type))
            self._errors += [error] * rows
        return pa.concat_arrays(arrays)


def _rows_of(arg: Any, start: int, stop: int) -> Any:
    """Return rows ``start:stop`` of an argument: a pyarrow Array or a pandas Series."""
    if isinstance(arg, pa.Array):
        return arg.slice(start, stop - start)
    return arg.iloc[start:stop]


EVALUATORS: dict[str, type[ArrowEvaluator]] = {
    SCALAR_ARROW: ArrowEvaluator,
    SCALAR_PANDAS: PandasEvaluator,
    SCALAR_ARROW_ITER: ArrowIterEvaluator,
    SCALAR_ROW: RowEvaluator,
}


def make_evaluator(
    eval_type: str,
    func: Callable[..., Any],
    udf_name: str,
    session_time_zone: str,
    decode: bool,
    policy: CallPolicy,
    return_type: pa.DataType,
) -> ArrowEvaluator:
    """Return the evaluator for a UDF, wrapped in its call policy when it has one.

    A batch UDF that is async, retried or keeps failing rows goes through
    :class:`PolicyBatchEvaluator`; a row UDF always applies its policy itself.
    """
    if eval_type == SCALAR_ROW:
        return RowEvaluator(func, udf_name, session_time_zone, decode, policy, return_type)
    inner = EVALUATORS[eval_type](func, udf_name, session_time_zone, decode)
    if eval_type == SCALAR_ARROW_ITER or (policy.is_default and not returns_coroutine(func)):
        return inner
    return PolicyBatchEvaluator(inner, policy, return_type)


def coerce_result(value: Any, return_type: pa.DataType, udf_name: str, num_rows: int) -> pa.Array:
    """Return a UDF's result as an Array of ``return_type`` and ``num_rows`` rows.

    A result of another type is converted only when no value changes (docs/types.md, "Results");
    otherwise WorkerFailure names the UDF, the types, and the first row and value that do not fit.
    """
    array = _to_array(value, return_type, udf_name)
    if len(array) != num_rows:
        raise WorkerFailure(
            f"UDF {udf_name!r} returned {len(array)} rows for a batch of {num_rows} rows; a "
            "scalar UDF returns exactly one value per input row",
            udf_name,
        )
    if array.type != return_type:
        array = _convert(array, return_type, udf_name)
    return array


def _to_array(value: Any, return_type: pa.DataType, udf_name: str) -> pa.Array:
    """Convert a pa.Array, pa.ChunkedArray, pandas object, numpy array or list to an Array.

    pandas and numpy values go through pandas' conventions (NaN and None are nulls); lists
    keep NaN as a value. Their type is inferred from the values, then converted to
    ``return_type`` by the same checked rules as an Arrow result; values whose type cannot be
    inferred (maps, mixed objects) are converted straight to ``return_type``.
    """
    if isinstance(value, pa.Array):
        return value
    if isinstance(value, pa.ChunkedArray):
        return value.combine_chunks()
    if _is_pandas_or_numpy(value):
        from_pandas = True
    elif isinstance(value, (list, tuple)):
        from_pandas = False
    else:
        raise WorkerFailure(
            f"UDF {udf_name!r} returned {type(value).__name__}; expected a pyarrow Array (or a "
            "ChunkedArray, pandas Series, numpy array or list) of its return type",
            udf_name,
        )
    try:
        return pa.array(value, from_pandas=from_pandas)
    except _CONVERSION_ERRORS:
        pass  # no single type fits every value: try the declared one
    try:
        return pa.array(value, type=return_type, from_pandas=from_pandas)
    except _CONVERSION_ERRORS as exc:
        row = _first_unconvertible_value(value, return_type, from_pandas)
        raise WorkerFailure(
            f"UDF {udf_name!r} returned values that do not convert to its return type "
            f"{return_type}{_row_text(row)}: {exc}",
            udf_name,
        ) from exc


_CONVERSION_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError)


def _convert(array: pa.Array, return_type: pa.DataType, udf_name: str) -> pa.Array:
    """Convert ``array`` to ``return_type`` when every value survives; else raise WorkerError."""
    if not converts_exactly(array.type, return_type):
        raise WorkerFailure(
            f"UDF {udf_name!r} returned an array of type {array.type}, but its return type is "
            f"{return_type}; quiver converts a result only between types of the same kind (see "
            "docs/types.md): convert it in the UDF",
            udf_name,
        )
    try:
        return _checked_cast(array, return_type)
    except pa.ArrowNotImplementedError as exc:
        raise WorkerFailure(
            f"UDF {udf_name!r} returned an array of type {array.type}, which Arrow cannot "
            f"convert to its return type {return_type} ({exc}): convert it in the UDF",
            udf_name,
        ) from exc
    except pa.ArrowException as exc:
        row = _first_failing_row(array, return_type)
        value = "values" if row is None else f"{_value_text(array[row].as_py())} at row {row}"
        raise WorkerFailure(
            f"UDF {udf_name!r} returned {value}, which does not fit its return type "
            f"{return_type} without loss (the result has type {array.type}; {exc})",
            udf_name,
        ) from exc


def _checked_cast(array: pa.Array, return_type: pa.DataType) -> pa.Array:
    """Cast with Arrow's value checks (overflow, truncation, rescaling, lost precision)."""
    if pa.types.is_integer(array.type) and pa.types.is_decimal(return_type):
        # Arrow checks an integer-to-decimal cast by type (int64 needs 19 digits), not by
        # value: go through a decimal wide enough for any integer, then check the values.
        wide = pa.decimal256(76, return_type.scale) if return_type.scale > 18 else None
        array = array.cast(wide or pa.decimal128(38, return_type.scale), safe=True)
    try:
        return array.cast(return_type, safe=True)
    except pa.ArrowInvalid:
        if not pa.types.is_nested(array.type) or len(array) == 0:
            raise
    # A sliced nested array shares its parent's children, and Arrow's cast checks all of
    # them; a copy of the rows holds only their own values.
    return array.take(pa.array(range(len(array)), pa.int64())).cast(return_type, safe=True)


def _first_failing_row(array: pa.Array, return_type: pa.DataType) -> int | None:
    """Find the first row whose value fails the checked cast, by bisection over slices."""
    lo, hi = 0, len(array)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        # take() copies the rows: a slice of a nested array still shares (and its cast still
        # checks) every child value.
        rows = array.take(pa.array(range(lo, mid), pa.int64()))
        try:
            _checked_cast(rows, return_type)
        except pa.ArrowException:
            hi = mid
        else:
            lo = mid
    return lo if hi - lo == 1 else None


def _first_unconvertible_value(
    value: Any, return_type: pa.DataType, from_pandas: bool
) -> tuple[int, Any] | None:
    """Find the first row of a pandas, numpy or list result that does not convert, and its value."""
    items = value.tolist() if hasattr(value, "tolist") else list(value)
    for row, item in enumerate(items):
        try:
            pa.array([item], type=return_type, from_pandas=from_pandas)
        except _CONVERSION_ERRORS:
            return row, item
    return None


def _row_text(found: tuple[int, Any] | None) -> str:
    """Say which row and value failed, when one was found."""
    if found is None:
        return ""
    row, item = found
    return f" (row {row}: {_value_text(item)})"


def _value_text(item: Any) -> str:
    """Show a value the way Python writes it, cut to a readable length."""
    text = repr(item)
    return text if len(text) <= 80 else text[:77] + "..."


def _has_nullable_dtype(data_type: pa.DataType) -> bool:
    """Tell whether pandas has a nullable dtype that keeps this column's values exactly."""
    return pa.types.is_integer(data_type) or pa.types.is_boolean(data_type)


def _nullable_dtype(data_type: pa.DataType) -> Any:
    """Return pandas' nullable dtype for an integer or bool type (a ``to_pandas`` types_mapper)."""
    if not _has_nullable_dtype(data_type):
        return None  # every other type converts the usual way
    import pandas as pd  # loaded already: this evaluator only runs pandas UDFs

    if pa.types.is_boolean(data_type):
        return pd.BooleanDtype()
    return pd.api.types.pandas_dtype(str(data_type).capitalize().replace("Uint", "UInt"))


def _is_pandas_or_numpy(value: Any) -> bool:
    """Tell whether ``value`` is a pandas Series/Index or a numpy array (without importing)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return True
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, (pandas.Series, pandas.Index))
