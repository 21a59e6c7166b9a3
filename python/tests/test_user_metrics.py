"""quiver.metrics: a UDF's own counters, and the failing frame's locals in a UDF's traceback."""

from __future__ import annotations

import pyarrow as pa
import pytest

import quiver
from quiver.worker import traceback_locals
from quiver.worker.errors import user_traceback
from quiver.worker.execution import Metrics


def test_counters_add_up_and_an_execution_reports_what_they_grew_by():
    skipped = quiver.metrics.counter("test_rows_skipped")
    skipped.add(5)
    execution = Metrics()  # snapshots the counters when an execution begins
    skipped.add(2)
    quiver.metrics.counter("test_rows_skipped").add(3)
    reported = execution.to_proto().counters
    assert reported["test_rows_skipped"] == 5
    assert quiver.metrics.snapshot()["test_rows_skipped"] == 10


def test_a_counter_that_did_not_grow_is_not_reported():
    quiver.metrics.counter("test_idle").add(1)
    assert "test_idle" not in Metrics().to_proto().counters


@pytest.mark.parametrize("name", ["rows skipped", "9lives", "", "rows-skipped", "é", None])
def test_a_name_that_is_no_metric_name_is_refused(name):
    with pytest.raises(ValueError, match="not a valid metric name"):
        quiver.metrics.counter(name)


@pytest.mark.parametrize("n", [-1, 1.5, "3", True])
def test_add_takes_whole_numbers_of_zero_or_more(n):
    with pytest.raises((TypeError, ValueError)):
        quiver.metrics.counter("test_typed").add(n)


def failing_udf(values):
    for row, value in enumerate(values):
        if value == 3:
            raise ValueError(f"bad value at row {row}")


def raised():
    try:
        failing_udf([0, 1, 2, 3, 4])
    except ValueError as exc:
        return exc
    raise AssertionError("the UDF did not raise")


def test_locals_are_shown_only_on_request(monkeypatch):
    monkeypatch.delenv(traceback_locals.ENVIRONMENT_VARIABLE, raising=False)
    assert "Locals of" not in user_traceback(raised())
    monkeypatch.setenv(traceback_locals.ENVIRONMENT_VARIABLE, "1")
    text = user_traceback(raised())
    assert "Locals of failing_udf" in text
    assert "    row = 3\n" in text
    assert "    value = 3\n" in text
    assert "    values = [0, 1, 2, 3, 4]\n" in text


def test_a_long_or_failing_repr_is_bounded():
    assert traceback_locals.bounded_repr("x" * 10_000).endswith("... (10,002 characters)")
    assert len(traceback_locals.bounded_repr("x" * 10_000)) < traceback_locals.REPR_LIMIT + 40

    class Broken:
        def __repr__(self):
            raise RuntimeError("no")

    assert traceback_locals.bounded_repr(Broken()) == "<repr failed: RuntimeError>"


def test_a_multi_line_repr_is_put_on_one_line():
    assert traceback_locals.bounded_repr(pa.array([1, 2])).startswith("<pyarrow.lib.Int64Array")
    assert "\n" not in traceback_locals.bounded_repr(pa.array([1, 2]))


@pytest.mark.parametrize("asked", [True, False])
def test_a_session_shows_the_failing_frames_locals_on_request(asked):
    pytest.importorskip("quiver._engine", reason="quiver._engine is not built (scripts/setup.sh)")
    from udfs import session_udfs as su

    table = pa.table({"id": pa.array([7, -13], pa.int64())})
    with quiver.Session(workers=1, traceback_locals=asked) as session:
        with pytest.raises(quiver.UdfError) as caught:
            session.map(table, udfs=[quiver.call(su.fail_on_negative, "id")]).read_all()
    text = caught.value.traceback
    assert "negative input" in text
    if asked:
        assert "Locals of fail_on_negative" in text
        [x_line] = [line for line in text.splitlines() if line.startswith("    x = ")]
        assert "7" in x_line and "-13" in x_line
    else:
        assert "Locals of" not in text
