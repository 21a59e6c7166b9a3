"""Cutting a pandas batch into group frames and joining the results, at a fixed cost per group.

A grouped map calls the user's function once per group, so whatever the worker does per group
beside that call is paid 100,000 times at the issue's scale (10M rows, 100k groups). The public
pandas ways cost more than a small pandas body itself: ``frame.iloc[s:e].reset_index(drop=True)``
copies the rows and builds two indexes, and ``pd.concat`` of thousands of small frames
re-derives their union of columns and dtypes. Measured per group of 100 rows (docs/benchmarks.md,
"Grouped map: where the time goes"), so these helpers take the same shortcuts as pandas' own
``groupby``: a group is a row slice of the batch's block manager (no copy; pandas' copy-on-write
still protects the batch), and the results are joined column by column with ``numpy``.

Each shortcut checks what it relies on and falls back to the public way when anything differs
(another pandas version, extension dtypes, results whose columns or dtypes vary), so the frames a
function gets, and the batch it answers, are the same either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def plain_labels(frame: Any) -> Any:
    """``frame`` with its column labels in a plain (object) Index, as pandas 2 makes them.

    pandas 3 turns string labels into an Arrow-backed ``str`` Index, and every label lookup in
    the user's function (``group["x"]``, ``assign``) then costs more: about a fifth of a small
    body's time per group (docs/decisions.md, "Grouped map: plain column labels"). The labels
    are the same strings; only ``frame.columns.dtype`` differs.
    """
    import pandas as pd

    columns = frame.columns
    if columns.dtype != object and all(isinstance(label, str) for label in columns):
        frame.columns = pd.Index(list(columns), dtype=object)
    return frame


def split_frame(frame: Any, bounds: list[tuple[int, int]]) -> Iterator[Any]:
    """Yield the rows [start, end) of ``frame`` for each bound, each indexed 0..n-1."""
    import pandas as pd

    slicer = _block_slicer(frame)
    for start, end in bounds:
        if slicer is not None:
            yield slicer(start, end, pd.RangeIndex(end - start))
        else:
            yield frame.iloc[start:end].reset_index(drop=True)


def _block_slicer(frame: Any) -> Any:
    """A function slicing rows of ``frame``'s block manager, as pandas' groupby does; or None."""
    import pandas as pd

    manager = getattr(frame, "_mgr", None)
    construct = getattr(frame, "_constructor_from_mgr", None)
    if manager is None or construct is None or not hasattr(manager, "get_slice"):
        return None

    def sliced(start: int, end: int, index: pd.RangeIndex) -> pd.DataFrame:
        rows = manager.get_slice(slice(start, end), axis=1)
        rows.set_axis(1, index)
        return construct(rows, axes=rows.axes)

    try:  # the same frame as the public way, or that way is used
        probe = sliced(0, min(len(frame), 2), pd.RangeIndex(min(len(frame), 2)))
        if not probe.equals(frame.iloc[0:2].reset_index(drop=True)):
            return None
        if list(probe.columns) != list(frame.columns) or not probe.index.equals(
            pd.RangeIndex(len(probe))
        ):
            return None
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    return sliced


def result_columns(result: Any, names: list[str], checked: dict[int, Any]) -> list[int] | None:
    """The positions of ``names`` among ``result``'s columns, or None if one is missing.

    ``checked`` remembers the answer per columns Index object: most results of one function
    share it (or the input's), and comparing a pandas 3 string Index costs tens of µs a group.
    """
    columns = result.columns
    known = checked.get(id(columns))
    if known is not None and known[0] is columns:
        return known[1]
    labels = list(columns)
    if len(set(labels)) != len(labels) or any(name not in labels for name in names):
        positions = None
    else:
        positions = [labels.index(name) for name in names]
    if len(checked) > 64:  # results that each build their columns: keep the memo small
        checked.clear()
    checked[id(columns)] = (columns, positions)
    return positions


def concat_columns(
    frames: list[Any], positions: list[list[int] | None], width: int
) -> list[Any] | None:
    """Join the results column by column: ``width`` numpy arrays, or None to use ``pd.concat``.

    Only when every frame holds each column as a numpy array of one and the same dtype (then
    ``np.concatenate`` gives what ``pd.concat`` gives); otherwise None.
    """
    values: list[list[np.ndarray]] = [[] for _ in range(width)]
    for frame, where in zip(frames, positions, strict=True):
        if where is None:  # duplicate column names: pd.concat's way decides
            return None
        manager = getattr(frame, "_mgr", None)
        if manager is None or not hasattr(manager, "iget_values"):
            return None
        for column, position in zip(values, where, strict=True):
            array = manager.iget_values(position)
            if not isinstance(array, np.ndarray) or array.ndim != 1:
                return None
            if column and array.dtype != column[0].dtype:
                return None
            column.append(array)
    return [np.concatenate(column) for column in values]
