"""The grouped and table kinds in the Python package: declarations and the worker's answers."""

from __future__ import annotations

import logging

import pandas as pd
import pyarrow as pa
import pytest

import quiver
from quiver._proto import pb
from quiver.kinds import parse_schema
from quiver.worker.batch_codec import decode_batch, encode_batch
from quiver.worker.errors import ProtocolViolation, UserError, WorkerFailure
from quiver.worker.execution import Execution


@quiver.grouped_map(returns="k int64, n int64")
def sizes(group: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"k": [group["k"].iloc[0]], "n": [len(group)]})


@quiver.grouped_map(returns="x double, k int64, label string")
def centred(group: pd.DataFrame) -> pd.DataFrame:
    # Columns in another order than returns=, one extra, and a string column (pd.concat's way).
    out = group.assign(x=group["x"] - group["x"].mean(), extra=1)
    return out.assign(label=[f"{k}:{i}" for i, k in enumerate(group["k"])])


@quiver.udaf(returns="float64")
class Sum:
    def init(self):
        return 0.0

    def update(self, state, x: pa.Array):
        return state + sum(v for v in x.to_pylist() if v is not None)

    def merge(self, a, b):
        return a + b

    def finish(self, state):
        return state


@quiver.udtf(returns="struct<c: string>")
def letters(text: str):
    if text == "boom":
        raise RuntimeError("boom")
    yield from (text or "")


def test_returns_accepts_columns_structs_and_schemas():
    want = pa.schema([("a", pa.int64()), ("b", pa.list_(pa.string()))])
    assert parse_schema("a int64, b list<string>") == want
    assert parse_schema("a: int64, b: list<string>") == want
    assert parse_schema("struct<a: int64, b: list<string>>") == want
    assert parse_schema(want) == want
    with pytest.raises(ValueError, match="NAME TYPE"):
        parse_schema("a int64, b")


def test_forms_come_from_hints_and_shape():
    assert sizes.flavour == "pandas" and sizes.kind == "grouped_map"
    assert Sum.partial and Sum.flavour == "arrow"
    assert letters.flavour == "rows"
    with pytest.raises(TypeError, match="lacks merge, finish"):

        @quiver.udaf(returns="int64")
        class Half:
            def init(self):
                return 0

            def update(self, state, x):
                return state


def execution(eval_type: int, function: str, schema: pa.Schema, offsets: list[int]) -> Execution:
    init = pb.Init(
        protocol_version=1,
        data_format=pb.ARROW_IPC_STREAM,
        input_schema=schema.serialize().to_pybytes(),
    )
    init.udfs.add(
        name="f",
        payload_format="python/ref",
        payload=f"{__file__}:{function}".encode(),
        eval_type=eval_type,
        argument_offsets=offsets,
    )
    run = Execution(init, logging.getLogger("test"))
    run.load()
    return run


def answer(run: Execution, batch: pa.RecordBatch) -> pa.RecordBatch:
    body = b"".join(bytes(part) for part in encode_batch(batch))
    out = run.run_batch(pa.py_buffer(body))
    return decode_batch(pa.py_buffer(b"".join(bytes(part) for part in out)))


GROUPED = pa.record_batch(
    {"__group": pa.array([0, 0, 1], pa.int32()), "k": [5, 5, 6], "x": [1.0, 2.0, None]}
)


def test_grouped_map_answers_per_group():
    run = execution(pb.GROUPED_MAP, "sizes", GROUPED.schema, [1, 2])
    assert answer(run, GROUPED).to_pylist() == [{"k": 5, "n": 2}, {"k": 6, "n": 1}]


def test_grouped_map_results_join_in_group_order_with_the_declared_columns():
    batch = pa.record_batch(
        {
            "__group": pa.array([0, 0, 1, 2, 2, 2], pa.int32()),
            "k": [5, 5, 6, 7, 7, 7],
            "x": [1.0, 3.0, None, 1.0, 2.0, 6.0],
        }
    )
    run = execution(pb.GROUPED_MAP, "centred", batch.schema, [1, 2])
    assert answer(run, batch).to_pydict() == {
        "x": [-1.0, 1.0, None, -2.0, -1.0, 3.0],
        "k": [5, 5, 6, 7, 7, 7],
        "label": ["5:0", "5:1", "6:0", "7:0", "7:1", "7:2"],
    }


def test_partial_udaf_states_merge_per_partition_then_across():
    run = execution(pb.GROUPED_AGG, "Sum", GROUPED.schema, [2])
    assert run.result_schema.field(0).metadata == {b"quiver.agg_form": b"partial"}
    states = answer(run, GROUPED).column(0)
    merge_batch = pa.record_batch(
        {
            "__group": pa.array([0, 0, 0], pa.int32()),
            "__partition": pa.array([0, 0, 1], pa.int32()),
            "s": states.take([0, 1, 0]),
        }
    )
    merge = execution(pb.GROUPED_AGG_MERGE, "Sum", merge_batch.schema, [1, 2])
    assert answer(merge, merge_batch).to_pylist() == [{"f": 6.0}]


def test_a_decreasing_group_column_is_a_protocol_error():
    run = execution(pb.GROUPED_MAP, "sizes", GROUPED.schema, [1, 2])
    bad = GROUPED.set_column(0, "__group", pa.array([1, 0, 0], pa.int32()))
    with pytest.raises(ProtocolViolation, match="decrease"):
        answer(run, bad)


def test_udtf_tags_rows_with_their_input_row_and_names_itself_on_errors():
    batch = pa.record_batch({"t": ["ab", None, "c"]})
    run = execution(pb.TABLE_FUNCTION, "letters", batch.schema, [0])
    assert answer(run, batch).to_pylist() == [
        {"__row": 0, "c": "a"},
        {"__row": 0, "c": "b"},
        {"__row": 2, "c": "c"},
    ]
    with pytest.raises(UserError) as raised:
        answer(run, pa.record_batch({"t": ["boom"]}))
    assert raised.value.udf_name == "f"


def test_a_plain_function_run_as_a_kind_is_a_worker_error():
    with pytest.raises(WorkerFailure, match="@quiver.udtf"):
        execution(pb.TABLE_FUNCTION, "parse_schema", pa.schema([("t", pa.string())]), [0])
