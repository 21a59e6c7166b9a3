"""End-to-end tests of ``python -m quiver.worker`` against a Python engine over a real socket."""

from __future__ import annotations

import os
import time

import cloudpickle
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from engine_harness import EngineHarness, batches_xy, ref_udf
from udfs import arith, series

import quiver
from quiver._proto import pb
from quiver.protocol.framing import HEADER, MAGIC

QUIVER_DIR = os.path.dirname(quiver.__file__)


def error_of(engine: EngineHarness) -> pb.Error:
    return engine.expect("error").message.error


# ---- handshake ----


def test_hello_carries_id_secret_runtime_and_pid() -> None:
    engine2 = EngineHarness(worker_id="other-7")
    try:
        hello = engine2.start()
        assert hello.protocol_version == 1
        assert hello.worker_id == "other-7"
        assert hello.secret == engine2.secret.encode()
        assert hello.runtime.startswith("python 3.") and "pyarrow" in hello.runtime
        assert hello.pid == engine2.proc.pid
        assert "quiver-worker[other-7]" in engine2.log()
    finally:
        engine2.close()


# ---- running UDFs ----


def test_arrow_pandas_and_iter_udfs_over_several_batches(engine: EngineHarness) -> None:
    batches = batches_xy(count=6)
    udfs = [
        ref_udf("same", "arith.py:identity", [0]),
        ref_udf("total", "arith.py:add", [0, 1]),
        ref_udf("loud", "arith.py:shout", [2]),
        ref_udf("scaled", "series.py:scale", [0]),
        ref_udf("described", "series.py:describe", [0, 2]),
        ref_udf("shifted", "arith.py:offset_iter", [1]),
    ]
    results, metrics = engine.run(udfs, batches)
    assert [f.name for f in results[0].schema] == [u.name for u in udfs]
    assert results[0].schema.types == [
        pa.int64(),
        pa.int64(),
        pa.string(),
        pa.float64(),
        pa.string(),
        pa.int64(),
    ]
    for batch, result in zip(batches, results, strict=True):
        x, y, s = batch.columns
        assert result.num_rows == batch.num_rows
        assert result.column("same").equals(arith.identity(x))
        assert result.column("total").equals(arith.add(x, y))
        assert result.column("loud").equals(arith.shout(s))
        expected_scaled = pa.Array.from_pandas(series.scale(x.to_pandas()), type=pa.float64())
        assert result.column("scaled").equals(expected_scaled)
        expected = series.describe(x.to_pandas(), s.to_pandas())
        assert result.column("described").equals(pa.Array.from_pandas(expected, type=pa.string()))
        assert result.column("shifted").equals(pc.add(y, 100))
    assert metrics.batches == 6 and metrics.rows_in == 30 and metrics.rows_out == 30
    assert "offset_iter: teardown ran" in engine.log()
    assert metrics.udf_nanos > 0 and metrics.codec_nanos > 0 and metrics.peak_rss_bytes > 2**20


def test_other_result_forms_and_loaders(engine: EngineHarness) -> None:
    factor = 7

    def closure(x):  # a local function: cloudpickle sends it by value
        return pc.multiply(x, factor)

    udfs = [
        ref_udf("chunks", "arith.py:as_chunks", [0]),
        ref_udf("numpy", "arith.py:as_numpy", [0]),
        ref_udf("module", "udfs.arith:add", [0, 1]),
        ref_udf("plain", "arith.py:undecorated_double", [1], return_type=pa.int64()),
        pb.UdfDefinition(
            name="pickled",
            payload_format="python/cloudpickle",
            payload=cloudpickle.dumps(
                quiver.udf(closure, returns="int64", eval_type="scalar_arrow")
            ),
            argument_offsets=[1],
        ),
        ref_udf("declared", "arith.py:identity", [0], return_type=pa.int64()),
    ]
    batches = batches_xy(count=2)
    results, _ = engine.run(udfs, batches)
    for batch, result in zip(batches, results, strict=True):
        x, y, _ = batch.columns
        assert result.column("chunks").equals(x)
        assert result.column("numpy").to_pylist() == [
            0 if v is None else v * 3 for v in x.to_pylist()
        ]
        assert result.column("module").equals(pc.add(x, y))
        assert result.column("plain").equals(pc.multiply(y, 2))
        assert result.column("pickled").equals(pc.multiply(y, 7))


def test_empty_batch_and_dictionary_input(engine: EngineHarness) -> None:
    empty = pa.record_batch({"x": pa.array([], type=pa.int64())})
    results, metrics = engine.run([ref_udf("same", "arith.py:identity", [0])], [empty, empty])
    assert [r.num_rows for r in results] == [0, 0]
    labels = pa.record_batch({"s": pa.array(["a", None, "b", "a"]).dictionary_encode()})
    results, _ = engine.run([ref_udf("plain", "arith.py:plain_string", [0])], [labels])
    assert results[0].column(0).to_pylist() == ["a", None, "b", "a"]


def test_payload_split_into_chunks(engine: EngineHarness) -> None:
    udf = ref_udf("total", "arith.py:add", [0, 1])
    payload = udf.payload
    udf.payload = payload[:5]  # the rest follows in two PayloadChunk messages
    engine.send(
        init=pb.Init(
            protocol_version=1,
            data_format=pb.ARROW_IPC_STREAM,
            udfs=[udf],
            payload_chunk_count=2,
        )
    )
    middle = len(payload) // 2
    engine.send(payload_chunk=pb.PayloadChunk(udf_index=0, data=payload[5:middle]))
    engine.send(payload_chunk=pb.PayloadChunk(udf_index=0, data=payload[middle:]))
    engine.expect("init_response")
    batch = batches_xy(count=1)[0]
    engine.send_batch(0, batch)
    assert engine.expect("data").batch.column(0).equals(pc.add(batch["x"], batch["y"]))


def test_worker_serves_executions_one_after_another(engine: EngineHarness) -> None:
    for round_ in range(3):
        batches = batches_xy(count=2)
        results, metrics = engine.run([ref_udf(f"r{round_}", "arith.py:identity", [0])], batches)
        assert metrics.batches == 2 and metrics.rows_in == 10  # metrics are per execution
        assert results[1].column(0).equals(batches[1]["x"])


def test_cancel_with_batches_in_flight(engine: EngineHarness) -> None:
    batches = batches_xy(count=8)
    engine.start_execution([ref_udf("same", "arith.py:identity", [0])], batches[0].schema)
    for sequence, batch in enumerate(batches):
        engine.send_batch(sequence, batch)
    engine.send(cancel=pb.Cancel(reason="test"))
    answered = []
    while (received := engine.recv()).kind == "data":
        answered.append(received.sequence)
        assert received.batch.column(0).equals(batches[received.sequence]["x"])
    assert received.kind == "cancel_response"
    assert answered == list(range(len(answered)))
    assert received.message.cancel_response.metrics.batches == len(answered)
    results, _ = engine.run([ref_udf("again", "arith.py:identity", [0])], batches[:1])
    assert results[0].num_rows == 5


# ---- UDF failures ----


def test_udf_exception_is_a_user_error_and_the_worker_stays_usable(engine: EngineHarness) -> None:
    batches = batches_xy(count=3)
    engine.start_execution([ref_udf("boom", "faulty.py:divide_by_zero", [0])], batches[0].schema)
    engine.send_batch(0, batches[0])
    error = error_of(engine)
    assert error.has_sequence and error.sequence == 0
    user = error.user_error
    assert user.udf_name == "boom"
    assert user.error_class == "ZeroDivisionError"
    assert user.message == "integer division or modulo by zero"
    assert "divide_by_zero" in user.traceback and "_divide" in user.traceback
    assert "faulty.py" in user.traceback
    assert user.traceback.rstrip().endswith("ZeroDivisionError: integer division or modulo by zero")
    assert QUIVER_DIR not in user.traceback and "quiver/worker" not in user.traceback
    # Failed: further Data is ignored; Cancel ends the execution as usual.
    engine.send_batch(1, batches[1])
    engine.send(heartbeat=pb.Heartbeat(nonce=5))
    assert engine.expect("heartbeat").message.heartbeat.nonce == 5
    engine.send(cancel=pb.Cancel())
    engine.expect("cancel_response")
    results, _ = engine.run([ref_udf("ok", "arith.py:identity", [0])], batches)
    assert len(results) == 3
    assert "ZeroDivisionError" in engine.log()


def test_error_in_a_later_batch_names_that_batch(engine: EngineHarness) -> None:
    good = pa.record_batch({"x": pa.array([1, 2])})
    bad = pa.record_batch({"x": pa.array([1, -2])})
    engine.start_execution([ref_udf("check", "faulty.py:fail_on_negative", [0])], good.schema)
    engine.send_batch(10, good)
    assert engine.expect("data").sequence == 10
    engine.send_batch(11, bad)
    error = error_of(engine)
    assert error.sequence == 11 and error.user_error.error_class == "ValueError"
    assert error.user_error.message == "negative input"
    engine.send(finish=pb.Finish())  # failed: Finish is answered as usual
    assert engine.expect("finish_response").message.finish_response.metrics.batches == 1


@pytest.mark.parametrize(
    ("ref", "fragments"),
    [
        ("faulty.py:too_short", ["'bad'", "returned 4 rows for a batch of 5 rows"]),
        ("faulty.py:wrong_type", ["'bad'", "type string", "return type is int64"]),
        ("faulty.py:reads_ahead", ["'bad'", "asked for the next batch"]),
    ],
)
def test_wrong_results_are_worker_errors(shared_engine: EngineHarness, ref: str, fragments) -> None:
    engine = shared_engine
    batch = batches_xy(count=1)[0]
    engine.start_execution([ref_udf("bad", ref, [0])], batch.schema)
    engine.send_batch(0, batch)
    error = error_of(engine)
    assert error.WhichOneof("kind") == "worker_error" and error.sequence == 0
    assert error.worker_error.udf_name == "bad"
    for fragment in fragments:
        assert fragment in error.worker_error.message
    engine.send(cancel=pb.Cancel())
    engine.expect("cancel_response")


def test_iter_udf_yielding_too_much_fails_at_finish(engine: EngineHarness) -> None:
    batch = batches_xy(count=1)[0]
    engine.start_execution([ref_udf("extra", "faulty.py:yields_extra", [0])], batch.schema)
    engine.send_batch(0, batch)
    engine.expect("data")
    engine.send(finish=pb.Finish())
    error = error_of(engine)
    assert not error.has_sequence
    assert "yielded more arrays than it got batches" in error.worker_error.message
    engine.expect("finish_response")


@pytest.mark.parametrize(
    ("udf", "fragments"),
    [
        (
            ref_udf("t", "arith.py:identity", [0], return_type=pa.int32()),
            ["returns=int64", "int32"],
        ),
        (ref_udf("t", "faulty.py:no_return_type", [0]), ["@quiver.udf(returns=...)"]),
        (ref_udf("t", "missing.py:f", [0]), ["cannot load UDF 't'", "missing.py"]),
        (ref_udf("t", "arith.py:nope", [0]), ["has no attribute 'nope'"]),
        (
            ref_udf("t", "arith.py:identty", [0]),
            ["arith.py has no attribute 'identty'; did you mean 'identity'?"],
        ),
        (ref_udf("t", "no_such_module:f", [0]), ["ModuleNotFoundError"]),
        (ref_udf("t", "arith.py", [0]), ["PATH.py:FUNCTION"]),
        (ref_udf("t", "arith.py:add", [0]), ["cannot be called with 1 argument"]),
        (
            ref_udf("t", "arith.py:identity", [0], eval_type=pb.SCALAR_PANDAS),
            ["scalar_arrow UDF", "asked for scalar_pandas"],
        ),
        (pb.UdfDefinition(name="t", payload_format="java/jar"), ["'java/jar'", "python/ref"]),
        (
            pb.UdfDefinition(name="t", payload_format="python/cloudpickle", payload=b"xx"),
            ["unpickle"],
        ),
    ],
)
def test_init_failures_are_worker_errors(shared_engine: EngineHarness, udf, fragments) -> None:
    engine = shared_engine
    answer = engine.init([udf], pa.schema([("x", pa.int64())]))
    assert answer.kind == "error", answer.message
    error = answer.message.error
    assert error.WhichOneof("kind") == "worker_error" and not error.has_sequence
    assert error.worker_error.udf_name == "t"
    for fragment in fragments:
        assert fragment in error.worker_error.message
    engine.send(cancel=pb.Cancel())
    engine.expect("cancel_response")


def test_unknown_data_format_is_a_worker_error(engine: EngineHarness) -> None:
    answer = engine.init([ref_udf("t", "arith.py:identity", [0])], data_format=7)
    assert "data_format 7" in answer.message.error.worker_error.message


def test_noisy_udf_output_goes_to_the_log(engine: EngineHarness) -> None:
    batches = batches_xy(count=2)
    results, _ = engine.run([ref_udf("chatty", "noisy.py:chatty", [0])], batches)
    assert all(r.column(0).equals(b["x"]) for r, b in zip(results, batches, strict=True))
    engine.send(shutdown=pb.Shutdown())
    engine.expect("shutdown")
    assert engine.wait() == 0
    log = engine.log()
    assert "stdout line 1999" in log and "stderr line 1999" in log
    assert "raw write to fd 1" in log
    assert engine.stdout() == b""


# ---- protocol errors ----


def test_second_init_during_an_execution_is_a_protocol_error(engine: EngineHarness) -> None:
    udfs = [ref_udf("same", "arith.py:identity", [0])]
    engine.start_execution(udfs)
    answer = engine.init(udfs)
    assert "second" in answer.message.error.protocol_error.message or (
        "Init during an execution" in answer.message.error.protocol_error.message
    )
    engine.send(cancel=pb.Cancel())
    engine.expect("cancel_response")
    assert engine.run(udfs, batches_xy(count=1))[0][0].num_rows == 5


def test_unsupported_protocol_version_is_a_protocol_error(engine: EngineHarness) -> None:
    answer = engine.init([ref_udf("same", "arith.py:identity", [0])], protocol_version=2)
    error = answer.message.error
    assert error.WhichOneof("kind") == "protocol_error"
    assert "protocol_version 2" in error.protocol_error.message


def test_data_and_finish_when_idle_are_protocol_errors(engine: EngineHarness) -> None:
    engine.send_batch(3, batches_xy(count=1)[0])
    error = error_of(engine)
    assert "outside an execution" in error.protocol_error.message
    assert error.has_sequence and error.sequence == 3
    engine.send(finish=pb.Finish())
    assert "outside an execution" in error_of(engine).protocol_error.message
    engine.send(data=pb.Data(sequence=1))
    assert "data frames" in error_of(engine).protocol_error.message
    # Still idle: a normal execution follows.
    assert len(engine.run([ref_udf("same", "arith.py:identity", [0])], batches_xy(1))[0]) == 1


def test_bad_arrow_body_is_a_protocol_error(engine: EngineHarness) -> None:
    engine.start_execution([ref_udf("same", "arith.py:identity", [0])])
    engine.sock.sendall(HEADER.pack(MAGIC, 2, 0, 0, 4, 0, 0, 8) + b"notarrow")
    error = error_of(engine)
    assert error.sequence == 4 and "not a valid Arrow IPC stream" in error.protocol_error.message


def test_batch_not_matching_the_input_schema_is_a_protocol_error(engine: EngineHarness) -> None:
    engine.start_execution(
        [ref_udf("same", "arith.py:identity", [0])], pa.schema([("x", pa.int64())])
    )
    engine.send_batch(0, pa.record_batch({"x": pa.array(["a"])}))
    assert "Init.input_schema has (int64)" in error_of(engine).protocol_error.message


# ---- liveness and exit ----


def test_heartbeat_is_echoed_when_idle_and_between_batches(engine: EngineHarness) -> None:
    engine.send(heartbeat=pb.Heartbeat(nonce=2**63 + 1))
    assert engine.expect("heartbeat").message.heartbeat.nonce == 2**63 + 1
    batch = batches_xy(count=1)[0]
    engine.start_execution([ref_udf("same", "arith.py:identity", [0])], batch.schema)
    engine.send_batch(0, batch)
    engine.expect("data")
    engine.send(heartbeat=pb.Heartbeat(nonce=42))
    assert engine.expect("heartbeat").message.heartbeat.nonce == 42


def test_shutdown_when_idle_exits_0(engine: EngineHarness) -> None:
    engine.send(shutdown=pb.Shutdown())
    engine.expect("shutdown")
    assert engine.at_eof()
    assert engine.wait() == 0


def test_shutdown_during_an_execution_needs_cancel_running(engine: EngineHarness) -> None:
    engine.start_execution([ref_udf("same", "arith.py:identity", [0])])
    engine.send(shutdown=pb.Shutdown())
    assert "cancel_running" in error_of(engine).protocol_error.message
    engine.send(shutdown=pb.Shutdown(cancel_running=True))
    assert engine.expect("shutdown").message.shutdown.cancel_running
    assert engine.wait() == 0


def test_sigterm_when_idle_exits_0(engine: EngineHarness) -> None:
    engine.terminate()
    assert engine.wait() == 0
    assert engine.at_eof()
    assert "SIGTERM" in engine.log()


def test_sigterm_during_a_udf_exits_0(engine: EngineHarness) -> None:
    batch = batches_xy(count=1)[0]
    engine.start_execution([ref_udf("slow", "slow.py:sleepy", [0])], batch.schema)
    engine.send_batch(0, batch)
    deadline = time.monotonic() + 10
    while "sleepy: started" not in engine.log() and time.monotonic() < deadline:
        time.sleep(0.02)
    engine.terminate()
    assert engine.wait(timeout=5) == 0


def test_engine_closing_the_connection_exits_0(engine: EngineHarness) -> None:
    engine.sock.close()
    engine.sock = None
    assert engine.wait() == 0


def test_connection_lost_mid_frame_exits_1(engine: EngineHarness) -> None:
    engine.send_raw(HEADER.pack(MAGIC, 2, 0, 0, 0, 0, 0, 100) + b"partial")
    engine.sock.close()
    engine.sock = None
    assert engine.wait() == 1
    assert "connection to the engine lost" in engine.log()
    assert "expected 100 bytes, got 7" in engine.log()


def test_bad_frame_exits_1(engine: EngineHarness) -> None:
    engine.send_raw(b"GET / HTTP/1.1\r\n" * 2)
    assert engine.wait() == 1
    assert "bad frame magic" in engine.log()
