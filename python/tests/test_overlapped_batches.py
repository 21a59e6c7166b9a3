"""Batches in flight at once in a real worker: an async row UDF's calls span batch boundaries.

The engine side is the test harness over uds (engine_harness.py); the UDF (udfs/async_http.py
``slow_echo``) sleeps, later rows answering sooner, and counts the most calls it ran at once.
"""

from __future__ import annotations

import pyarrow as pa
from engine_harness import EngineHarness, ref_udf

from quiver._proto import pb

SLOW_ECHO = ref_udf("slow_echo", "async_http.py:slow_echo", [0], pa.int64())


def _batch(values: list[int]) -> pa.RecordBatch:
    return pa.record_batch({"x": pa.array(values, pa.int64())})


def test_batches_overlap_and_are_answered_in_order_with_heartbeats_among_them(
    engine: EngineHarness,
) -> None:
    engine.start()
    batches = [_batch(list(range(3 * i, 3 * i + 3))) for i in range(8)]
    engine.start_execution([SLOW_ECHO], batches[0].schema)
    for sequence, batch in enumerate(batches):
        engine.send_batch(100 + sequence, batch)
        if sequence == 2:
            engine.send(heartbeat=pb.Heartbeat(nonce=7))
    engine.send(finish=pb.Finish())
    sequences, values, nonces = [], [], []
    while (received := engine.recv()).kind != "finish_response":
        if received.kind == "heartbeat":
            nonces.append(received.message.heartbeat.nonce)
        else:
            assert received.kind == "data", received.message
            sequences.append(received.sequence)
            values += received.batch.column(0).to_pylist()
    assert sequences == [100 + i for i in range(8)]  # strictly in order
    assert values == list(range(24))
    assert nonces == [7]
    counters = received.message.finish_response.metrics.counters
    # 8 lanes busy although each batch has 3 rows: the calls spanned the batches.
    assert counters["most_at_once"] == 8
    assert counters["slow_echo__calls"] == 24


def test_a_plain_udf_beside_an_async_one_sees_the_batches_in_order(engine: EngineHarness) -> None:
    engine.start()
    # Batch i holds values of x % 10 == i: slow_echo answers each later batch 4 ms sooner, so
    # the batches' async calls end in reverse order; running_total must still see 0, 1, 2, ...
    batches = [_batch([10 * j + i for j in range(4)]) for i in range(6)]
    total = ref_udf("running_total", "async_http.py:running_total", [0], pa.int64())
    results, _ = engine.run([SLOW_ECHO, total], batches, window=6)
    values = [v for r in results for v in r.column(0).to_pylist()]
    totals = [v for r in results for v in r.column(1).to_pylist()]
    assert values == [v for b in batches for v in b.column(0).to_pylist()]
    assert totals == [sum(values[: n + 1]) for n in range(len(values))]


def test_a_cancel_behind_batches_in_flight_stops_them_all(engine: EngineHarness) -> None:
    engine.start()
    engine.start_execution([SLOW_ECHO], _batch([0]).schema)
    for sequence in range(4):
        engine.send_batch(sequence, _batch([1000 + 2 * sequence, 1001 + 2 * sequence]))
    engine.send(cancel=pb.Cancel(reason="test"))
    received = engine.recv()  # a minute per call: only a Cancel that cut them answers now
    assert received.kind == "cancel_response", received.message
    assert received.message.cancel_response.metrics.batches == 0
    # The worker serves the next execution, with no call of the old one left running.
    results, metrics = engine.run([SLOW_ECHO], [_batch([1, 2]), _batch([3])])
    assert [r.column(0).to_pylist() for r in results] == [[1, 2], [3]]
    assert metrics.counters["slow_echo__calls"] == 3
