"""The Python worker's native batch loop (quiver._worker_loop) against a Python engine over a real
socket: the same bytes as the Python path, and every frame it does not handle handed back."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pyarrow as pa
import pytest
from engine_harness import EngineHarness, batches_xy, ref_udf

from quiver._proto import pb
from quiver.protocol.framing import HEADER, MAGIC
from quiver.transport.uds import read_frame
from quiver.worker.native_batches import NATIVE_ENV, load_extension

pytestmark = pytest.mark.skipif(
    load_extension() is None, reason="quiver._worker_loop is not built (cmake --build: _engine)"
)

NATIVE_LOG = "the native batch loop runs"


def started(native: bool, monkeypatch: pytest.MonkeyPatch) -> EngineHarness:
    """Start a worker (debug log) with the native loop on or off."""
    monkeypatch.setenv(NATIVE_ENV, "1" if native else "0")
    engine = EngineHarness()
    engine.start(("--log-level", "debug"))
    return engine


@pytest.fixture
def native(monkeypatch: pytest.MonkeyPatch) -> Iterator[EngineHarness]:
    engine = started(True, monkeypatch)
    yield engine
    engine.close()


def raw_answers(engine: EngineHarness, batches: list[pa.RecordBatch]) -> list[bytes]:
    """Run one execution of three UDFs batch by batch; return every answer frame's bytes."""
    udfs = [
        ref_udf("same", "arith.py:identity", [0]),
        ref_udf("total", "arith.py:add", [0, 1]),
        ref_udf("loud", "arith.py:shout", [2]),
        ref_udf("scaled", "series.py:scale", [0]),
    ]
    engine.start_execution(udfs, batches[0].schema)
    frames = []
    for sequence, batch in enumerate(batches):
        engine.send_batch(sequence, batch)
        frame = read_frame(engine.sock)
        assert frame is not None and not frame.is_control, engine.log()
        header = HEADER.pack(MAGIC, 2, 0, 0, frame.sequence, 0, 0, frame.body.size)
        frames.append(header + frame.body.to_pybytes())
    engine.send(finish=pb.Finish())
    metrics = engine.expect("finish_response").message.finish_response.metrics
    assert metrics.batches == len(batches) and metrics.rows_out == metrics.rows_in
    assert metrics.codec_nanos > 0
    return frames


def test_the_native_loop_sends_the_bytes_the_python_path_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batches = batches_xy(count=6, rows=7)
    answers = {}
    for native in (True, False):
        engine = started(native, monkeypatch)
        try:
            answers[native] = raw_answers(engine, batches)
            assert (NATIVE_LOG in engine.log()) is native
        finally:
            engine.close()
    assert answers[True] == answers[False]


def test_heartbeats_between_native_batches_are_echoed_and_batches_go_on(
    native: EngineHarness,
) -> None:
    batches = batches_xy(count=5)
    schema = native.start_execution([ref_udf("same", "arith.py:identity", [0])], batches[0].schema)
    for sequence, batch in enumerate(batches):
        native.send_batch(sequence, batch)
        native.send(heartbeat=pb.Heartbeat(nonce=sequence))
        result = native.expect("data")
        assert result.sequence == sequence and result.batch.schema.equals(schema)
        assert result.batch.column(0).equals(batch.column(0))
        assert native.expect("heartbeat").message.heartbeat.nonce == sequence
    native.send(cancel=pb.Cancel())
    assert native.expect("cancel_response").message.cancel_response.metrics.batches == 5
    assert NATIVE_LOG in native.log()


def test_a_bad_body_after_native_batches_is_the_python_paths_protocol_error(
    native: EngineHarness,
) -> None:
    batch = pa.record_batch({"x": pa.array([1, 2, 3])})
    native.start_execution([ref_udf("same", "arith.py:identity", [0])], batch.schema)
    for sequence in range(3):
        native.send_batch(sequence, batch)
        assert native.expect("data").sequence == sequence
    native.sock.sendall(HEADER.pack(MAGIC, 2, 0, 0, 7, 0, 0, 8) + b"notarrow")
    error = native.expect("error").message.error
    assert error.sequence == 7 and "not a valid Arrow IPC stream" in error.protocol_error.message
    native.send(cancel=pb.Cancel())
    native.expect("cancel_response")
    # The worker stays usable, and the next execution runs natively again.
    results, metrics = native.run([ref_udf("same", "arith.py:identity", [0])], [batch] * 4)
    assert len(results) == 4 and metrics.batches == 4


def test_a_batch_of_another_schema_after_native_batches_is_refused(native: EngineHarness) -> None:
    batch = pa.record_batch({"x": pa.array([1, 2, 3])})
    native.start_execution([ref_udf("same", "arith.py:identity", [0])], batch.schema)
    for sequence in range(2):
        native.send_batch(sequence, batch)
        native.expect("data")
    native.send_batch(2, pa.record_batch({"x": pa.array(["a"])}))
    error = native.expect("error").message.error
    assert error.sequence == 2 and "Init.input_schema has (int64)" in error.protocol_error.message


def test_a_udf_error_in_a_native_batch_names_it_and_later_batches_are_ignored(
    native: EngineHarness,
) -> None:
    good = pa.record_batch({"x": pa.array([1, 2])})
    bad = pa.record_batch({"x": pa.array([1, -2])})
    native.start_execution([ref_udf("check", "faulty.py:fail_on_negative", [0])], good.schema)
    for sequence in range(3):
        native.send_batch(sequence, good)
        assert native.expect("data").sequence == sequence
    native.send_batch(3, bad)
    native.send_batch(4, good)  # after the Error: ignored
    error = native.expect("error").message.error
    assert error.sequence == 3 and error.user_error.message == "negative input"
    assert "fail_on_negative" in error.user_error.traceback
    native.send(finish=pb.Finish())
    assert native.expect("finish_response").message.finish_response.metrics.batches == 3


def test_a_frame_broken_after_native_batches_ends_the_worker_with_1(native: EngineHarness) -> None:
    batch = pa.record_batch({"x": pa.array([1])})
    native.start_execution([ref_udf("same", "arith.py:identity", [0])], batch.schema)
    for sequence in range(2):
        native.send_batch(sequence, batch)
        native.expect("data")
    native.send_raw(HEADER.pack(MAGIC, 2, 0, 0, 2, 0, 0, 100) + b"partial")
    native.sock.close()
    native.sock = None
    assert native.wait() == 1
    assert "expected 100 bytes, got 7" in native.log()


def test_bad_magic_after_native_batches_ends_the_worker_with_1(native: EngineHarness) -> None:
    batch = pa.record_batch({"x": pa.array([1])})
    native.start_execution([ref_udf("same", "arith.py:identity", [0])], batch.schema)
    for sequence in range(2):
        native.send_batch(sequence, batch)
        native.expect("data")
    native.send_raw(b"GET / HTTP/1.1\r\n" * 2)
    assert native.wait() == 1
    assert "bad frame magic" in native.log()


def test_sigterm_while_the_native_loop_waits_exits_0(native: EngineHarness) -> None:
    batch = pa.record_batch({"x": pa.array([1])})
    native.start_execution([ref_udf("same", "arith.py:identity", [0])], batch.schema)
    for sequence in range(2):
        native.send_batch(sequence, batch)
        native.expect("data")
    time.sleep(0.1)  # the loop now blocks reading the socket
    native.terminate()
    assert native.wait(timeout=5) == 0
    assert "SIGTERM" in native.log()


def test_the_engine_closing_while_the_native_loop_waits_exits_0(native: EngineHarness) -> None:
    batch = pa.record_batch({"x": pa.array([1])})
    native.start_execution([ref_udf("same", "arith.py:identity", [0])], batch.schema)
    for sequence in range(2):
        native.send_batch(sequence, batch)
        native.expect("data")
    native.sock.close()
    native.sock = None
    assert native.wait() == 0


class WithoutTheExtension(EngineHarness):
    """A worker whose environment has quiver's Python code but not its compiled loop."""

    def worker_command(self) -> list[str]:
        blocked = "import sys; sys.modules['quiver._worker_loop'] = None; "
        return [sys.executable, "-c", blocked + "from quiver.worker.__main__ import main; main()"]


def test_a_worker_without_the_extension_runs_every_batch_in_python() -> None:
    engine = WithoutTheExtension()
    try:
        engine.start(("--log-level", "debug"))
        batches = batches_xy(count=4)
        results, metrics = engine.run([ref_udf("same", "arith.py:identity", [0])], batches)
        assert [r.column(0) for r in results] == [b.column(0) for b in batches]
        assert metrics.batches == 4
        assert NATIVE_LOG not in engine.log()
    finally:
        engine.close()


def test_sigterm_during_a_udf_of_a_native_batch_exits_0(native: EngineHarness) -> None:
    good = pa.record_batch({"x": pa.array([1])})
    native.start_execution([ref_udf("slow", "sleep_on_negative.py:sleep_on_negative", [0])])
    for sequence in range(2):
        native.send_batch(sequence, good)
        native.expect("data")
    native.send_batch(2, pa.record_batch({"x": pa.array([-1])}))
    deadline = time.monotonic() + 10
    while "sleep_on_negative: started" not in native.log() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "sleep_on_negative: started" in native.log() and NATIVE_LOG in native.log()
    native.terminate()
    assert native.wait(timeout=5) == 0
