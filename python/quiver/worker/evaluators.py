"""Call a UDF the way its eval type says, and turn what it returns into an Arrow array.

Each evaluator splits a call into ``prepare`` (convert the arguments; worker code), ``call``
(the user's code, timed as UDF time) and the shared :func:`coerce_result`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from quiver.udf import SCALAR_ARROW, SCALAR_ARROW_ITER, SCALAR_PANDAS
from quiver.worker.errors import WorkerError


class ArrowEvaluator:
    """scalar_arrow: ``f(pa.Array, ...)`` once per batch."""

    def __init__(self, func: Callable[..., Any], udf_name: str, session_time_zone: str) -> None:
        self.func = func
        self.udf_name = udf_name

    def prepare(self, args: list[pa.Array]) -> list[Any]:
        """Pass the Arrow arrays through unchanged."""
        return args

    def call(self, args: list[Any]) -> Any:
        """Call the UDF on one batch's arguments."""
        return self.func(*args)

    def finish(self) -> None:
        """Do nothing: a per-batch UDF keeps no state between batches."""

    def close(self) -> None:
        """Do nothing: a per-batch UDF keeps no state between batches."""


class PandasEvaluator(ArrowEvaluator):
    """scalar_pandas: ``f(pd.Series, ...)`` once per batch."""

    def __init__(self, func: Callable[..., Any], udf_name: str, session_time_zone: str) -> None:
        super().__init__(func, udf_name, session_time_zone)
        self.session_time_zone = session_time_zone

    def prepare(self, args: list[pa.Array]) -> list[Any]:
        """Convert each argument to a pandas Series."""
        try:
            return [self._to_series(arg) for arg in args]
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise WorkerError(
                f"cannot convert the arguments of UDF {self.udf_name!r} to pandas: {exc}",
                self.udf_name,
            ) from exc

    def _to_series(self, arg: pa.Array) -> Any:
        """Convert one array; move zoned timestamps to the session time zone."""
        series = arg.to_pandas()
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
        raise WorkerError(
            f"UDF {self.udf_name!r} (scalar_arrow_iter) asked for the next batch before yielding "
            "the result of the current one; it must yield exactly one array per input batch",
            self.udf_name,
        )


class ArrowIterEvaluator(ArrowEvaluator):
    """scalar_arrow_iter: ``f(Iterator[tuple[pa.Array, ...]])`` once per execution.

    The UDF runs lazily: each batch is offered to its iterator and one result pulled out.
    """

    def __init__(self, func: Callable[..., Any], udf_name: str, session_time_zone: str) -> None:
        super().__init__(func, udf_name, session_time_zone)
        self._feeder = _BatchFeeder(udf_name)
        self._results: Iterator[Any] | None = None

    def call(self, args: list[Any]) -> Any:
        """Offer one batch to the UDF's iterator and return the array it yields for it."""
        self._feeder.put(tuple(args))
        results = self._start()
        try:
            result = next(results)
        except StopIteration:
            raise WorkerError(
                f"UDF {self.udf_name!r} (scalar_arrow_iter) stopped yielding before its input "
                "ended; it must yield exactly one array per input batch",
                self.udf_name,
            ) from None
        if self._feeder.holds_batch:
            raise WorkerError(
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
                raise WorkerError(
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
        raise WorkerError(
            f"UDF {self.udf_name!r} (scalar_arrow_iter) yielded more arrays than it got batches",
            self.udf_name,
        )

    def close(self) -> None:
        """Stop the UDF's generator early (its ``finally`` blocks run)."""
        results, self._results = self._results, None
        close = getattr(results, "close", None)
        if close is not None:
            close()


EVALUATORS: dict[str, type[ArrowEvaluator]] = {
    SCALAR_ARROW: ArrowEvaluator,
    SCALAR_PANDAS: PandasEvaluator,
    SCALAR_ARROW_ITER: ArrowIterEvaluator,
}


def coerce_result(value: Any, return_type: pa.DataType, udf_name: str, num_rows: int) -> pa.Array:
    """Return a UDF's result as an Array of ``return_type`` and ``num_rows`` rows.

    Raises WorkerError, naming the UDF, the expected and the actual, when it is not one.
    """
    array = _to_array(value, return_type, udf_name)
    if len(array) != num_rows:
        raise WorkerError(
            f"UDF {udf_name!r} returned {len(array)} rows for a batch of {num_rows} rows; a "
            "scalar UDF returns exactly one value per input row",
            udf_name,
        )
    if array.type != return_type:
        raise WorkerError(
            f"UDF {udf_name!r} returned an array of type {array.type}, but its return type is "
            f"{return_type}",
            udf_name,
        )
    return array


def _to_array(value: Any, return_type: pa.DataType, udf_name: str) -> pa.Array:
    """Convert a pa.Array, pa.ChunkedArray, pandas object, numpy array or list to an Array."""
    if isinstance(value, pa.Array):
        return value
    if isinstance(value, pa.ChunkedArray):
        return value.combine_chunks()
    try:
        if _is_pandas_or_numpy(value):
            return pa.Array.from_pandas(value, type=return_type)
        if isinstance(value, (list, tuple)):
            return pa.array(value, type=return_type)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        raise WorkerError(
            f"UDF {udf_name!r} returned values that do not convert to {return_type}: {exc}",
            udf_name,
        ) from exc
    raise WorkerError(
        f"UDF {udf_name!r} returned {type(value).__name__}; expected a pyarrow Array (or a "
        "ChunkedArray, pandas Series, numpy array or list) of its return type",
        udf_name,
    )


def _is_pandas_or_numpy(value: Any) -> bool:
    """Tell whether ``value`` is a pandas Series/Index or a numpy array (without importing)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return True
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, (pandas.Series, pandas.Index))
