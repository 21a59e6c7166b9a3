"""The Rust example worker (rust/quiver-worker/examples/udfs.rs) as a process, over uds and gRPC.

The engine side is this package's test engine (:mod:`engine_harness`) and a grpcio client; the
worker is the binary ``cargo build --release --example udfs`` makes (scripts/setup.sh builds it).
"""

from __future__ import annotations

import os
import secrets
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from engine_harness import TIMEOUT, EngineHarness
from test_worker_grpc import GrpcWorkerProcess

from quiver._proto import pb
from quiver.protocol.framing import encode_control_frame
from quiver.transport.uds import send_frame

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "rust" / "target" / "release" / "examples" / "udfs"

pytestmark = pytest.mark.skipif(
    not os.access(WORKER, os.X_OK),
    reason=f"the Rust example worker is not built ({WORKER}); run "
    "`cargo build --release --example udfs` in rust/ (scripts/setup.sh does)",
)


def symbol(name: str, function: str, offsets: list[int], **fields: object) -> pb.UdfDefinition:
    """Name a function the Rust worker registered (payload format "symbol")."""
    return pb.UdfDefinition(
        name=name,
        payload_format="symbol",
        payload=function.encode(),
        argument_offsets=offsets,
        **fields,
    )


def batches(count: int, rows: int = 5) -> list[pa.RecordBatch]:
    """Batches with an int64 column x (with nulls), a float64 column f and a string column s."""
    result = []
    for n in range(count):
        result.append(
            pa.record_batch(
                {
                    "x": pa.array([None if i % 4 == 0 else i + n for i in range(rows)], pa.int64()),
                    "f": pa.array([i / 2 for i in range(rows)], pa.float64()),
                    "s": pa.array([None if i == 1 else f"v{i}é" for i in range(rows)]),
                }
            )
        )
    return result


class RustEngine(EngineHarness):
    """The test engine, starting the Rust example worker instead of the Python one."""

    def start(self, extra_args: tuple[str, ...] = ()) -> pb.Hello:
        """Start the worker, accept it and return its Hello."""
        env = dict(os.environ, QUIVER_WORKER_SECRET=self.secret)
        command = [str(WORKER), "--id", self.worker_id]
        command += ["--connection", f"unix:{self.socket_path}", *extra_args]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        self.sock, _ = self.listener.accept()
        self.sock.settimeout(TIMEOUT)
        first = self.recv()
        assert first.kind == "hello", f"first message is {first.kind}, not hello"
        return first.message.hello


@pytest.fixture
def engine() -> Iterator[RustEngine]:
    harness = RustEngine()
    try:
        harness.start()
        yield harness
    finally:
        harness.close()


# ---- uds ----


def test_hello_carries_id_secret_runtime_and_pid() -> None:
    harness = RustEngine(worker_id="rust-7")
    try:
        hello = harness.start()
        assert hello.protocol_version == 1
        assert hello.worker_id == "rust-7"
        assert hello.secret == harness.secret.encode()  # the 64 hex characters, as ASCII
        assert hello.runtime.startswith("rust ") and "arrow-rs" in hello.runtime
        assert hello.pid == harness.proc.pid
    finally:
        harness.close()


def test_three_udfs_over_several_batches(engine: RustEngine) -> None:
    data = batches(6)
    udfs = [
        symbol("same", "identity", [2]),
        symbol("loud", "upper", [2]),
        symbol("next", "add_one", [0]),
        symbol("half", "add_one", [1]),
    ]
    results, metrics = engine.run(udfs, data)
    assert results[0].schema == pa.schema(
        [("same", pa.string()), ("loud", pa.string()), ("next", pa.int64()), ("half", pa.float64())]
    )
    for batch, result in zip(data, results, strict=True):
        assert result.column("same").equals(batch["s"])
        assert result.column("loud").equals(pc.utf8_upper(batch["s"]))
        assert result.column("next").equals(pc.add(batch["x"], 1))
        assert result.column("half").equals(pc.add(batch["f"], 1.0))
    assert (metrics.batches, metrics.rows_in, metrics.rows_out) == (6, 30, 30)
    assert metrics.udf_nanos > 0 and metrics.codec_nanos > 0 and metrics.peak_rss_bytes > 0


def test_empty_large_and_several_executions(engine: RustEngine) -> None:
    big = pa.record_batch({"x": pa.array(range(300_000), pa.int64())})
    empty = big.slice(0, 0)
    for _ in range(2):  # one worker, executions one after another
        results, metrics = engine.run([symbol("y", "add_one", [0])], [empty, big, empty])
        assert [r.num_rows for r in results] == [0, 300_000, 0]
        assert results[1].column(0).equals(pc.add(big["x"], 1))
        assert metrics.batches == 3  # per execution


def test_udf_error_is_a_user_error_then_finish(engine: RustEngine) -> None:
    data = batches(3)
    engine.start_execution([symbol("boom", "raise_error", [0])], data[0].schema)
    engine.send_batch(0, data[0])
    error = engine.expect("error").message.error
    assert error.has_sequence and error.sequence == 0
    assert error.user_error.udf_name == "boom"
    assert error.user_error.error_class == "ValueError"
    assert error.user_error.message == "raise_error always fails"
    # Failed: further Data is ignored, heartbeats are answered, Finish ends it as usual.
    engine.send_batch(1, data[1])
    engine.send(heartbeat=pb.Heartbeat(nonce=5))
    assert engine.expect("heartbeat").message.heartbeat.nonce == 5
    engine.send(finish=pb.Finish())
    engine.expect("finish_response")
    results, _ = engine.run([symbol("ok", "identity", [0])], data)
    assert len(results) == 3


def test_init_failures_are_worker_errors_naming_the_udf(engine: RustEngine) -> None:
    schema = batches(1)[0].schema
    cases = [
        (symbol("h", "hash_name", [0]), "hash_name"),
        (symbol("t", "add_one", [2]), "int64 or float64"),
        (pb.UdfDefinition(name="p", payload_format="python/ref", payload=b"m:f"), "python/ref"),
        (symbol("i", "identity", [0], eval_type=pb.SCALAR_PANDAS), "SCALAR_PANDAS"),
    ]
    for udf, fragment in cases:
        error = engine.init([udf], schema).message.error
        assert error.WhichOneof("kind") == "worker_error", error
        assert error.worker_error.udf_name == udf.name
        assert fragment in error.worker_error.message
        engine.send(cancel=pb.Cancel())
        engine.expect("cancel_response")


def test_declared_return_type_must_match(engine: RustEngine) -> None:
    declared = pa.schema([pa.field("u", pa.int64())]).serialize().to_pybytes()
    error = engine.init([symbol("u", "upper", [2], return_type=declared)], batches(1)[0].schema)
    assert "declared return type Int64" in error.message.error.worker_error.message


def test_cancel_with_batches_in_flight(engine: RustEngine) -> None:
    data = batches(8)
    engine.start_execution([symbol("same", "identity", [0])], data[0].schema)
    for sequence, batch in enumerate(data):
        engine.send_batch(sequence, batch)
    engine.send(cancel=pb.Cancel(reason="test"))
    answered = []
    while (received := engine.recv()).kind == "data":
        answered.append(received.sequence)
    assert received.kind == "cancel_response"
    assert answered == list(range(len(answered)))
    assert received.message.cancel_response.metrics.batches == len(answered)
    results, _ = engine.run([symbol("again", "identity", [0])], data[:1])
    assert results[0].num_rows == 5


def test_protocol_errors(engine: RustEngine) -> None:
    data = batches(1)
    engine.send_batch(0, data[0])  # Data before Init: ProtocolError, stays idle
    assert engine.expect("error").message.error.WhichOneof("kind") == "protocol_error"
    engine.start_execution([symbol("a", "identity", [0])], data[0].schema)
    engine.send(init=pb.Init(protocol_version=1))
    error = engine.expect("error").message.error
    assert "Init during an execution" in error.protocol_error.message
    engine.send(cancel=pb.Cancel())
    engine.expect("cancel_response")
    answer = engine.init([symbol("a", "identity", [0])], data[0].schema, protocol_version=2)
    assert "protocol_version 2" in answer.message.error.protocol_error.message
    engine.send(cancel=pb.Cancel())
    engine.expect("cancel_response")
    send_frame(engine.sock, encode_control_frame(b"\xff\xff\xff"))  # not an EngineMessage
    assert engine.expect("error").message.error.WhichOneof("kind") == "protocol_error"


def test_bad_frame_is_a_protocol_error_then_exit_1(engine: RustEngine) -> None:
    engine.send_raw(b"GET / HTTP/1.1\r\n" * 2)
    error = engine.expect("error").message.error
    assert "bad frame magic" in error.protocol_error.message
    assert engine.wait() == 1


def test_shutdown_sigterm_and_close_exit_0(engine: RustEngine) -> None:
    engine.start_execution([symbol("a", "identity", [0])], batches(1)[0].schema)
    engine.send(shutdown=pb.Shutdown())
    assert (
        "Shutdown during an execution"
        in engine.expect("error").message.error.protocol_error.message
    )
    engine.send(shutdown=pb.Shutdown(cancel_running=True))
    assert engine.expect("shutdown").message.shutdown.cancel_running
    assert engine.wait() == 0
    for ending in ("sigterm", "close"):
        other = RustEngine()
        try:
            other.start()
            if ending == "sigterm":
                other.proc.send_signal(signal.SIGTERM)
            else:
                other.sock.close()
                other.sock = None
            assert other.wait() == 0, other.log()
        finally:
            other.close()


def test_missing_secret_and_bad_arguments_are_usage_errors() -> None:
    env = {k: v for k, v in os.environ.items() if k != "QUIVER_WORKER_SECRET"}
    run = subprocess.run(
        [str(WORKER), "--id", "1", "--connection", "unix:/nonexistent"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 2 and "QUIVER_WORKER_SECRET" in run.stderr
    run = subprocess.run(
        [str(WORKER), "--id", "1"], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert run.returncode == 2 and "--connection" in run.stderr


def test_one_row_round_trip_and_throughput(engine: RustEngine) -> None:
    """Measure (and print) the uds round trip of 1-row batches and 1 MiB identity throughput."""
    one = pa.record_batch({"x": pa.array([1], pa.int64())})
    big = pa.record_batch({"x": pa.array(range(1 << 17), pa.int64())})  # 1 MiB of values
    engine.start_execution([symbol("same", "identity", [0])], one.schema)
    times = []
    for sequence in range(2000):
        started = time.perf_counter_ns()
        engine.send_batch(sequence, one)
        engine.expect("data")
        times.append(time.perf_counter_ns() - started)
    started = time.perf_counter()
    count = 200
    for sequence in range(2000, 2000 + count):
        engine.send_batch(sequence, big)
        assert engine.expect("data").batch.num_rows == big.num_rows
    seconds = time.perf_counter() - started
    engine.send(finish=pb.Finish())
    engine.expect("finish_response")
    print(
        f"\nrust worker over uds: 1-row round trip median {statistics.median(times) / 1e3:.1f} us; "
        f"1 MiB identity {count * big.nbytes / seconds / 2**20:.0f} MiB/s"
    )


# ---- gRPC ----


class RustGrpcWorker(GrpcWorkerProcess):
    """The gRPC test client, serving from the Rust example worker."""

    def start(self) -> RustGrpcWorker:
        """Start the worker and wait until it answers a heartbeat."""
        import grpc

        from quiver.v1 import quiver_pb2_grpc

        env = dict(os.environ, QUIVER_WORKER_SECRET=self.secret)
        command = [str(WORKER), "--transport", "grpc", "--id", self.worker_id]
        command += ["--connection", self.endpoint]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(command, env=env, stdout=err, stderr=err)
        self.served_endpoint = self._wait_for_ready_line()
        target = self.served_endpoint.removeprefix("grpc+tcp:").replace("grpc+unix:", "unix:")
        # grpc-core's default :authority for a unix: target is the socket path, which the HTTP/2
        # server under tonic (h2) refuses as malformed; a host name is what HTTP/2 expects.
        options = [
            ("grpc.max_receive_message_length", -1),
            ("grpc.max_send_message_length", -1),
            ("grpc.default_authority", "localhost"),
        ]
        self.channel = grpc.insecure_channel(target, options=options)
        self.stub = quiver_pb2_grpc.UdfWorkerStub(self.channel)
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                self.heartbeat(1)
                return self
            except grpc.RpcError:
                assert time.monotonic() < deadline, self.log()
                time.sleep(0.02)


@pytest.fixture(params=["grpc+unix", "grpc+tcp"])
def grpc_worker(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[RustGrpcWorker]:
    folder = Path(tmp_path_factory.mktemp("r"))
    if request.param == "grpc+unix":
        endpoint = f"grpc+unix:{folder}/w.sock"
    else:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            endpoint = f"grpc+tcp:127.0.0.1:{probe.getsockname()[1]}"
    worker = RustGrpcWorker(endpoint, folder, worker_id="rg")
    try:
        yield worker.start()
    finally:
        worker.close()


def test_grpc_executions_errors_and_shutdown(grpc_worker: RustGrpcWorker) -> None:
    import grpc

    response = grpc_worker.heartbeat(9)
    assert response.worker.pid == grpc_worker.proc.pid and not response.worker.secret
    data = batches(4)
    call = grpc_worker.execute()
    results, metrics = call.run([symbol("loud", "upper", [2]), symbol("n", "add_one", [0])], data)
    assert results[2].column("loud").equals(pc.utf8_upper(data[2]["s"]))
    assert metrics.batches == 4
    call = grpc_worker.execute()
    call.init([symbol("boom", "raise_error", [0])], data[0].schema)
    call.send_batch(0, data[0])
    assert call.expect("error").message.error.user_error.udf_name == "boom"
    call.send(finish=pb.Finish())
    call.expect("finish_response")
    assert call.ended()
    with pytest.raises(grpc.RpcError) as refused:
        grpc_worker.manage(
            metadata=[("quiver-secret", secrets.token_hex(32))], heartbeat=pb.Heartbeat()
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert grpc_worker.heartbeat(2).refused_calls == 1
    assert grpc_worker.manage(shutdown=pb.Shutdown()).HasField("shutdown")
    assert grpc_worker.wait() == 0


def test_grpc_sigterm_exits_0(grpc_worker: RustGrpcWorker) -> None:
    grpc_worker.proc.send_signal(signal.SIGTERM)
    assert grpc_worker.wait() == 0
