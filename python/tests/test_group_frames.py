"""A grouped map's frames and answers are the same through the worker's shortcuts as through
the public pandas way (``iloc`` + ``reset_index`` per group, ``pd.concat`` of the results)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from quiver.worker import group_frames
from quiver.worker.group_frames import concat_columns, plain_labels, result_columns, split_frame

BATCH = pa.record_batch(
    {
        "k": pa.array([1, 1, 2, 3, 3, 3], pa.int64()),
        "x": pa.array([0.5, None, 2.0, 3.0, float("nan"), 5.0]),
        "name": pa.array(["a", None, "c", "d", "e", "f"]),
        "flag": pa.array([True, False, None, True, True, False]),
        "when": pa.array([dt.datetime(2026, 1, d, tzinfo=dt.timezone.utc) for d in range(1, 7)]),
        "n": pa.array([1, None, 3, 4, 5, 6], pa.int32()),
    }
)
BOUNDS = [(0, 2), (2, 3), (3, 6)]


def public_groups(frame: pd.DataFrame) -> list[pd.DataFrame]:
    return [frame.iloc[s:e].reset_index(drop=True) for s, e in BOUNDS]


def test_groups_are_the_rows_of_each_bound_indexed_from_zero():
    frame = BATCH.to_pandas()
    groups = list(split_frame(frame, BOUNDS))
    assert len(groups) == len(BOUNDS)
    for got, want in zip(groups, public_groups(frame), strict=True):
        pd.testing.assert_frame_equal(got, want)
        assert isinstance(got.index, pd.RangeIndex) and got.index.start == 0


def test_a_function_that_writes_into_its_group_changes_no_other_group():
    frame = BATCH.to_pandas()
    first, second, _ = split_frame(frame, BOUNDS)
    first.loc[0, "k"] = 99
    first["x"] = -1.0
    pd.testing.assert_frame_equal(second, public_groups(BATCH.to_pandas())[1])


def test_without_the_block_manager_the_public_way_is_used(monkeypatch):
    monkeypatch.setattr(group_frames, "_block_slicer", lambda frame: None)
    frame = BATCH.to_pandas()
    for got, want in zip(split_frame(frame, BOUNDS), public_groups(frame), strict=True):
        pd.testing.assert_frame_equal(got, want)


def test_columns_are_found_in_any_order_and_missing_ones_reported():
    checked: dict = {}
    frame = pd.DataFrame({"b": [1], "extra": [2], "a": [3]})
    assert result_columns(frame, ["a", "b"], checked) == [2, 0]
    assert result_columns(frame, ["a", "b"], checked) == [2, 0]  # from the memo
    assert result_columns(frame, ["a", "missing"], {}) is None
    duplicated = pd.DataFrame([[1, 2]], columns=["a", "a"])
    assert result_columns(duplicated, ["a"], {}) is None


@pytest.mark.parametrize("column", ["k", "x", "flag", "n", "when", "name"])
def test_joined_columns_equal_pd_concat_or_defer_to_it(column):
    frames = public_groups(BATCH.to_pandas())
    names = [column, "x" if column == "k" else "k"]
    positions = [result_columns(f, names, {}) for f in frames]
    joined = concat_columns(frames, positions, len(names))
    want = pd.concat([f[names] for f in frames], ignore_index=True)
    if joined is None:  # e.g. pandas' string or tz-aware dtypes: pd.concat joins them
        assert column not in ("k", "x")  # numpy columns always join without it
        return
    for got, name in zip(joined, names, strict=True):
        np.testing.assert_array_equal(got, want[name].to_numpy())


def test_columns_whose_dtype_differs_between_results_defer_to_pd_concat():
    frames = [pd.DataFrame({"v": [1, 2]}), pd.DataFrame({"v": [0.5]})]
    assert concat_columns(frames, [[0], [0]], 1) is None
    same = [pd.DataFrame({"v": [1, 2]}), pd.DataFrame({"v": np.array([], dtype=np.int64)})]
    (joined,) = concat_columns(same, [[0], [0]], 1)
    assert joined.tolist() == [1, 2] and joined.dtype == np.int64


def test_labels_are_the_same_strings_in_a_plain_index():
    frame = plain_labels(BATCH.to_pandas())
    assert list(frame.columns) == BATCH.schema.names and frame.columns.dtype == object
    group = next(split_frame(frame, BOUNDS))
    assert group["x"].tolist()[0] == 0.5 and group.columns.dtype == object
    numbered = pd.DataFrame({0: [1], "a": [2]})
    assert plain_labels(numbered).columns.tolist() == [0, "a"]
