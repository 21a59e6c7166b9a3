"""The C++ SDK's example worker (cpp/examples/udf_worker) against the Python engine harness.

The harness starts the compiled worker the way the engine does and speaks frames with it over a
real Unix socket, so these tests check the C++ SDK against the same bytes the Python worker sees.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from engine_harness import EngineHarness, batches_xy

from quiver._proto import pb
from quiver.protocol.framing import MAGIC

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("QUIVER_BUILD_DIR", REPO_ROOT / "build"))
EXAMPLE_WORKER = BUILD_DIR / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker"

pytestmark = pytest.mark.skipif(
    not EXAMPLE_WORKER.exists(),
    reason=f"the C++ example worker is not built: no {EXAMPLE_WORKER} "
    "(build it with `cmake --build build --target quiver_example_udf_worker`)",
)


class CppEngineHarness(EngineHarness):
    """An engine harness whose worker is the compiled example."""

    def worker_command(self) -> list[str]:
        """Start the example worker binary."""
        return [str(EXAMPLE_WORKER)]


@pytest.fixture
def cpp() -> Iterator[CppEngineHarness]:
    """Yield an engine whose C++ worker has connected and said Hello."""
    harness = CppEngineHarness()
    try:
        harness.start()
        yield harness
    finally:
        harness.close()


def symbol(name: str, function: str, offsets: list[int], **fields: object) -> pb.UdfDefinition:
    """Describe a UDF that names a function the worker registered."""
    return pb.UdfDefinition(
        name=name,
        payload_format="symbol",
        payload=function.encode(),
        argument_offsets=offsets,
        **fields,
    )


def with_float(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Add a float64 column f (x / 2) to a batch of batches_xy."""
    return batch.append_column("f", pc.divide(pc.cast(batch["x"], pa.float64()), 2.0))


def error_of(engine: EngineHarness) -> pb.Error:
    return engine.expect("error").message.error


def test_hello(cpp: CppEngineHarness) -> None:
    other = CppEngineHarness(worker_id="cpp-7")
    try:
        hello = other.start()
        assert hello.protocol_version == 1
        assert hello.worker_id == "cpp-7"
        assert hello.secret == other.secret.encode()  # the 64 hex characters, as they are
        assert hello.runtime.startswith("c++ quiver-sdk")
        assert hello.pid == other.proc.pid
    finally:
        other.close()


def test_udfs_over_several_batches(cpp: CppEngineHarness) -> None:
    batches = [with_float(batch) for batch in batches_xy(count=6)]
    udfs = [
        symbol("same", "identity", [2]),
        symbol("loud", "upper", [2], eval_type=pb.SCALAR_ARROW),
        symbol("next", "add_one", [0]),
        symbol("next_f", "add_one", [3]),
    ]
    results, metrics = cpp.run(udfs, batches)
    assert results[0].schema.names == ["same", "loud", "next", "next_f"]
    assert results[0].schema.types == [pa.string(), pa.string(), pa.int64(), pa.float64()]
    for batch, result in zip(batches, results, strict=True):
        assert result.num_rows == batch.num_rows
        assert result["same"].equals(batch["s"])
        assert result["loud"].equals(pc.utf8_upper(batch["s"]))
        assert result["next"].equals(pc.add(batch["x"], 1))
        assert result["next_f"].equals(pc.add(batch["f"], 1.0))
    assert (metrics.batches, metrics.rows_in, metrics.rows_out) == (6, 30, 30)
    assert metrics.udf_nanos > 0 and metrics.codec_nanos > 0 and metrics.peak_rss_bytes > 2**20


def test_executions_one_after_another_and_empty_batches(cpp: CppEngineHarness) -> None:
    for round_ in range(3):
        results, metrics = cpp.run([symbol(f"r{round_}", "identity", [0])], batches_xy(count=2))
        assert metrics.batches == 2 and metrics.rows_in == 10  # per execution
    empty = pa.record_batch({"x": pa.array([], type=pa.int64())})
    results, _ = cpp.run([symbol("same", "identity", [0])], [empty, empty])
    assert [r.num_rows for r in results] == [0, 0]


def test_udf_error_then_finish(cpp: CppEngineHarness) -> None:
    batches = batches_xy(count=3)
    cpp.start_execution([symbol("boom", "raise_error", [0])], batches[0].schema)
    cpp.send_batch(0, batches[0])
    error = error_of(cpp)
    assert error.has_sequence and error.sequence == 0
    assert error.user_error.udf_name == "boom"
    assert error.user_error.error_class == "std::domain_error"
    assert error.user_error.message == "raise_error always fails"
    # Failed: Data is ignored, heartbeats answered, Finish answered as usual.
    cpp.send_batch(1, batches[1])
    cpp.send(heartbeat=pb.Heartbeat(nonce=9))
    assert cpp.expect("heartbeat").message.heartbeat.nonce == 9
    cpp.send(finish=pb.Finish())
    cpp.expect("finish_response")
    results, _ = cpp.run([symbol("ok", "identity", [0])], batches)
    assert len(results) == 3
    assert "std::domain_error" in cpp.log()


def test_cancel_with_batches_in_flight(cpp: CppEngineHarness) -> None:
    batches = batches_xy(count=8)
    cpp.start_execution([symbol("same", "identity", [0])], batches[0].schema)
    for sequence, batch in enumerate(batches):
        cpp.send_batch(sequence * 3 + 5, batch)  # sequences need not start at 0 nor be consecutive
    cpp.send(cancel=pb.Cancel(reason="test"))
    answered = []
    while (received := cpp.recv()).kind == "data":
        answered.append(received.sequence)
    assert received.kind == "cancel_response"
    assert answered == [n * 3 + 5 for n in range(len(answered))]
    assert received.message.cancel_response.metrics.batches == len(answered)
    results, _ = cpp.run([symbol("again", "identity", [0])], batches[:1])
    assert results[0].num_rows == 5


def test_heartbeat_in_every_state(cpp: CppEngineHarness) -> None:
    cpp.send(heartbeat=pb.Heartbeat(nonce=1))
    assert cpp.expect("heartbeat").message.heartbeat.nonce == 1
    batch = batches_xy(count=1)[0]
    cpp.start_execution([symbol("same", "identity", [0])], batch.schema)
    cpp.send(heartbeat=pb.Heartbeat(nonce=2))
    assert cpp.expect("heartbeat").message.heartbeat.nonce == 2
    cpp.send(finish=pb.Finish())
    cpp.expect("finish_response")


@pytest.mark.parametrize(
    ("udf", "words"),
    [
        (symbol("mystery", "no_such_function", [0]), ["mystery", "no_such_function", "add_one"]),
        (symbol("loud", "upper", [0]), ["loud", "upper", "column 'x'", "int64"]),
        (
            pb.UdfDefinition(name="py", payload_format="python/ref", payload=b"m:f"),
            ["py", "python/ref"],
        ),
        (symbol("iter", "identity", [0], eval_type=pb.SCALAR_ARROW_ITER), ["iter", "3"]),
    ],
    ids=["unknown-name", "unsupported-type", "unknown-format", "unknown-eval-type"],
)
def test_init_errors_are_worker_errors(
    cpp: CppEngineHarness, udf: pb.UdfDefinition, words: list[str]
) -> None:
    schema = batches_xy(count=1)[0].schema
    error = cpp.init([udf], schema).message.error
    assert error.WhichOneof("kind") == "worker_error", error
    assert error.worker_error.udf_name == udf.name
    for word in words:
        assert word in error.worker_error.message
    cpp.send(cancel=pb.Cancel())
    cpp.expect("cancel_response")
    results, _ = cpp.run([symbol("ok", "identity", [0])], batches_xy(count=1))
    assert results[0].num_rows == 5


def test_declared_return_type_must_match(cpp: CppEngineHarness) -> None:
    declared = pa.schema([pa.field("n", pa.string())]).serialize().to_pybytes()
    schema = batches_xy(count=1)[0].schema
    error = cpp.init([symbol("n", "add_one", [0], return_type=declared)], schema).message.error
    assert "declared return type string" in error.worker_error.message


def test_payload_chunks(cpp: CppEngineHarness) -> None:
    batch = batches_xy(count=1)[0]
    init = pb.Init(
        protocol_version=1,
        data_format=pb.ARROW_IPC_STREAM,
        udfs=[symbol("next", "add_", [0])],
        input_schema=batch.schema.serialize().to_pybytes(),
        payload_chunk_count=2,
    )
    cpp.send(init=init)
    cpp.send(payload_chunk=pb.PayloadChunk(udf_index=0, data=b"o"))
    cpp.send(payload_chunk=pb.PayloadChunk(udf_index=0, data=b"ne"))
    cpp.expect("init_response")
    cpp.send_batch(0, batch)
    assert cpp.expect("data").batch.column(0).equals(pc.add(batch["x"], 1))
    cpp.send(finish=pb.Finish())
    cpp.expect("finish_response")


def test_protocol_violations(cpp: CppEngineHarness) -> None:
    batch = batches_xy(count=1)[0]
    cpp.send_batch(0, batch)  # Data before Init: ProtocolError, the worker stays idle
    assert "outside an execution" in error_of(cpp).protocol_error.message
    cpp.start_execution([symbol("same", "identity", [0])], batch.schema)
    cpp.send(init=pb.Init(protocol_version=1))  # a second Init fails the execution
    assert "Init during an execution" in error_of(cpp).protocol_error.message
    cpp.send(finish=pb.Finish())
    cpp.expect("finish_response")
    wrong = pa.record_batch({"x": pa.array(["not", "int"])})
    cpp.start_execution([symbol("same", "identity", [0])], batch.schema)
    cpp.send_batch(0, wrong)  # a batch that does not match the input schema
    assert "input_schema" in error_of(cpp).protocol_error.message
    cpp.send(cancel=pb.Cancel())
    cpp.expect("cancel_response")


def test_bad_frame_is_answered_then_the_worker_exits_non_zero(cpp: CppEngineHarness) -> None:
    cpp.send_raw(b"XXXX" + bytes(28))
    assert "magic" in error_of(cpp).protocol_error.message
    assert cpp.at_eof()
    assert cpp.wait() == 1


def test_truncated_frame_exits_non_zero(cpp: CppEngineHarness) -> None:
    cpp.send_raw(MAGIC + b"\x02")
    cpp.sock.shutdown(2)
    assert cpp.wait() == 1


def test_shutdown_when_idle_and_with_cancel_running(cpp: CppEngineHarness) -> None:
    cpp.send(shutdown=pb.Shutdown())
    cpp.expect("shutdown")
    assert cpp.wait() == 0
    other = CppEngineHarness()
    try:
        other.start()
        batch = batches_xy(count=1)[0]
        other.start_execution([symbol("same", "identity", [0])], batch.schema)
        other.send(shutdown=pb.Shutdown())  # during an execution: refused
        assert "Shutdown during an execution" in error_of(other).protocol_error.message
        other.send(shutdown=pb.Shutdown(cancel_running=True))
        assert other.expect("shutdown").message.shutdown.cancel_running
        assert other.wait() == 0
    finally:
        other.close()


def test_sigterm_and_engine_closing_exit_zero(cpp: CppEngineHarness) -> None:
    cpp.terminate()
    assert cpp.wait() == 0
    other = CppEngineHarness()
    try:
        other.start()
        other.sock.close()
        other.sock = None
        assert other.wait() == 0
    finally:
        other.close()


def test_secret_is_required(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "QUIVER_WORKER_SECRET"}
    done = subprocess.run(
        [str(EXAMPLE_WORKER), "--id", "w", "--connection", f"unix:{tmp_path}/none.sock"],
        env=env,
        capture_output=True,
        timeout=20,
    )
    assert done.returncode == 2
    assert b"QUIVER_WORKER_SECRET" in done.stderr
