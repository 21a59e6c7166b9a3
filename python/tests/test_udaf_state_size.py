"""A partial UDAF whose states outgrow what one batch may carry says so, with sizes and advice.

The states of one batch's groups travel pickled in one binary column of one message (at most
2 GiB). The worker checks their size group by group; the test lowers the limit to a few KiB so
that a UDAF keeping its rows as its state crosses it quickly.
"""

from __future__ import annotations

import logging

import pyarrow as pa
import pytest

import quiver
from quiver._proto import pb
from quiver.worker import kinds
from quiver.worker.batch_codec import decode_batch, encode_batch
from quiver.worker.errors import WorkerFailure
from quiver.worker.execution import Execution


@quiver.udaf(returns="int64")
class KeepsRows:
    """Keeps every row in its state: a state that grows with its group."""

    def init(self):
        return []

    def update(self, state, x: pa.Array):
        return state + x.to_pylist()

    def merge(self, a, b):
        return a + b

    def finish(self, state):
        return len(state)


BATCH = pa.record_batch(
    {"__group": pa.array([0] * 500 + [1] * 500, pa.int32()), "x": pa.array(range(1000))}
)


def partial_execution() -> Execution:
    init = pb.Init(
        protocol_version=1,
        data_format=pb.ARROW_IPC_STREAM,
        input_schema=BATCH.schema.serialize().to_pybytes(),
    )
    init.udfs.add(
        name="rows",
        payload_format="python/ref",
        payload=f"{__file__}:KeepsRows".encode(),
        eval_type=pb.GROUPED_AGG,
        argument_offsets=[1],
    )
    run = Execution(init, logging.getLogger("test"))
    run.load()
    return run


def answer(run: Execution, batch: pa.RecordBatch) -> pa.RecordBatch:
    body = b"".join(bytes(part) for part in encode_batch(batch))
    out = run.run_batch(pa.py_buffer(body))
    return decode_batch(pa.py_buffer(b"".join(bytes(part) for part in out)))


def test_states_under_the_limit_pass():
    states = answer(partial_execution(), BATCH).column(0)
    assert len(states) == 2


def test_states_over_the_limit_fail_with_their_size_and_what_to_do(monkeypatch):
    monkeypatch.setattr(kinds, "MAX_STATES_BYTES", 2000)
    with pytest.raises(WorkerFailure) as failure:
        answer(partial_execution(), BATCH)
    message = failure.value.message
    assert failure.value.udf_name == "rows"
    assert "UDAF 'rows'" in message
    assert "of this batch's 2 groups" in message
    assert "over the limit of 0.00 GiB (2,000 bytes)" in message
    assert "smaller state" in message
    assert "ChunkedArray" not in message
