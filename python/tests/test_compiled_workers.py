"""The compiled example workers of the C++ SDK and the Rust SDK, as processes, over uds and gRPC.

What every worker must do is checked by the conformance kit (`quiver conformance`, which
scripts/test.sh runs on each in-repo worker). These tests check what belongs to each SDK: the Hello
it sends, how its errors read (the SDK's own exception class, the reasons Init gives), its command
line, and its gRPC server's authentication. The engine side is the test engine of
:mod:`engine_harness` over a real Unix socket, and a grpcio client.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from engine_harness import TIMEOUT, EngineHarness, batches_xy
from test_worker_grpc import GrpcWorkerProcess

from quiver._proto import pb

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("QUIVER_BUILD_DIR", REPO / "build"))


@dataclass(frozen=True)
class CompiledWorker:
    """One SDK's example worker and the facts the tests expect of it."""

    name: str
    binary: Path
    build_hint: str
    runtime_prefix: str
    # The error class the SDK reports for the exception `raise_error` throws.
    raise_error_class: str
    # Words each Init failure names, beyond the UDF's own name.
    init_error_words: dict[str, list[str]] = field(default_factory=dict)


WORKERS = [
    CompiledWorker(
        name="c++",
        binary=BUILD_DIR / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker",
        build_hint="cmake --build build --target quiver_example_udf_worker",
        runtime_prefix="c++ quiver-sdk",
        raise_error_class="std::domain_error",
        init_error_words={
            "unknown-name": ["no_such_function", "add_one"],
            "unsupported-type": ["add_one", "column 's'", "string"],
        },
    ),
    CompiledWorker(
        name="rust",
        binary=REPO / "rust" / "target" / "release" / "examples" / "udfs",
        build_hint="cargo build --release --example udfs (in rust/)",
        runtime_prefix="rust ",
        raise_error_class="ValueError",
        init_error_words={
            "unknown-name": ["no_such_function"],
            "unsupported-type": ["int64 or float64"],
        },
    ),
]


def _param(worker: CompiledWorker) -> object:
    missing = not os.access(worker.binary, os.X_OK)
    reason = f"the {worker.name} example worker is not built ({worker.binary}): {worker.build_hint}"
    return pytest.param(worker, id=worker.name, marks=pytest.mark.skipif(missing, reason=reason))


@pytest.fixture(params=[_param(worker) for worker in WORKERS])
def compiled(request: pytest.FixtureRequest) -> CompiledWorker:
    return request.param


class CompiledEngine(EngineHarness):
    """The test engine, starting a compiled example worker."""

    def __init__(self, worker: CompiledWorker, worker_id: str = "w1") -> None:
        super().__init__(worker_id=worker_id)
        self.binary = worker.binary

    def worker_command(self) -> list[str]:
        """Start the compiled worker instead of the Python one."""
        return [str(self.binary)]


@pytest.fixture
def engine(compiled: CompiledWorker) -> Iterator[CompiledEngine]:
    harness = CompiledEngine(compiled)
    try:
        harness.start()
        yield harness
    finally:
        harness.close()


def symbol(name: str, function: str, offsets: list[int], **fields: object) -> pb.UdfDefinition:
    """Name a function the worker registered (payload format "symbol")."""
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


# ---- uds ----


def test_hello_carries_id_secret_runtime_and_pid(compiled: CompiledWorker) -> None:
    harness = CompiledEngine(compiled, worker_id="sdk-7")
    try:
        hello = harness.start()
        assert hello.protocol_version == 1
        assert hello.worker_id == "sdk-7"
        assert hello.secret == harness.secret.encode()  # the 64 hex characters, as ASCII
        assert hello.runtime.startswith(compiled.runtime_prefix), hello.runtime
        assert hello.pid == harness.proc.pid
    finally:
        harness.close()


def test_example_functions_over_several_batches(engine: CompiledEngine) -> None:
    data = [with_float(batch) for batch in batches_xy(count=6)]
    udfs = [
        symbol("same", "identity", [2]),
        symbol("loud", "upper", [2]),
        symbol("next", "add_one", [0]),
        symbol("next_f", "add_one", [3]),
    ]
    results, metrics = engine.run(udfs, data)
    assert results[0].schema.types == [pa.string(), pa.string(), pa.int64(), pa.float64()]
    for batch, result in zip(data, results, strict=True):
        assert result["same"].equals(batch["s"])
        assert result["loud"].equals(pc.utf8_upper(batch["s"]))
        assert result["next"].equals(pc.add(batch["x"], 1))
        assert result["next_f"].equals(pc.add(batch["f"], 1.0))
    assert (metrics.batches, metrics.rows_in, metrics.rows_out) == (6, 30, 30)
    assert metrics.udf_nanos > 0 and metrics.codec_nanos > 0 and metrics.peak_rss_bytes > 0
    big = pa.record_batch({"x": pa.array(range(300_000), pa.int64())})
    results, _ = engine.run([symbol("y", "add_one", [0])], [big.slice(0, 0), big])
    assert [r.num_rows for r in results] == [0, 300_000]
    assert results[1].column(0).equals(pc.add(big["x"], 1))


def test_udf_error_reports_the_sdk_error_class(
    compiled: CompiledWorker, engine: CompiledEngine
) -> None:
    data = batches_xy(count=1)
    engine.start_execution([symbol("boom", "raise_error", [0])], data[0].schema)
    engine.send_batch(0, data[0])
    error = engine.expect("error").message.error
    assert error.has_sequence and error.sequence == 0
    assert error.user_error.udf_name == "boom"
    assert error.user_error.error_class == compiled.raise_error_class
    assert error.user_error.message == "raise_error always fails"
    engine.send(finish=pb.Finish())
    engine.expect("finish_response")


@pytest.mark.parametrize(
    ("case", "udf", "words"),
    [
        ("unknown-name", symbol("mystery", "no_such_function", [0]), []),
        ("unsupported-type", symbol("next", "add_one", [2]), []),
        (
            "unknown-format",
            pb.UdfDefinition(name="py", payload_format="python/ref", payload=b"m:f"),
            ["python/ref"],
        ),
        ("declared-type", None, ["declared return type"]),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_init_errors_are_worker_errors_naming_the_udf(
    compiled: CompiledWorker,
    engine: CompiledEngine,
    case: str,
    udf: pb.UdfDefinition | None,
    words: list[str],
) -> None:
    if udf is None:  # add_one declared to return a string
        declared = pa.schema([pa.field("n", pa.string())]).serialize().to_pybytes()
        udf = symbol("n", "add_one", [0], return_type=declared)
    error = engine.init([udf], batches_xy(count=1)[0].schema).message.error
    assert error.WhichOneof("kind") == "worker_error", error
    assert error.worker_error.udf_name == udf.name
    for word in [*words, *compiled.init_error_words.get(case, [])]:
        assert word in error.worker_error.message
    engine.send(cancel=pb.Cancel())
    engine.expect("cancel_response")


def test_missing_secret_and_connection_are_usage_errors(compiled: CompiledWorker) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIVER_WORKER_SECRET")}
    run = subprocess.run(
        [str(compiled.binary), "--id", "1", "--connection", "unix:/nonexistent"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 2 and "QUIVER_WORKER_SECRET" in run.stderr
    run = subprocess.run(
        [str(compiled.binary), "--id", "1"], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert run.returncode == 2 and "--connection" in run.stderr


# ---- gRPC ----


class CompiledGrpcWorker(GrpcWorkerProcess):
    """The gRPC test client, serving from a compiled example worker."""

    def __init__(self, worker: CompiledWorker, endpoint: str, folder: Path) -> None:
        super().__init__(endpoint, folder, worker_id="cg")
        self.binary = worker.binary

    def worker_command(self) -> list[str]:
        """Start the compiled worker instead of the Python one."""
        return [str(self.binary)]


@pytest.fixture(params=["grpc+unix", "grpc+tcp"])
def grpc_worker(
    request: pytest.FixtureRequest, compiled: CompiledWorker, tmp_path_factory
) -> Iterator[CompiledGrpcWorker]:
    folder = Path(tmp_path_factory.mktemp("g"))
    if request.param == "grpc+unix":
        endpoint = f"grpc+unix:{folder}/w.sock"
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            endpoint = f"grpc+tcp:127.0.0.1:{probe.getsockname()[1]}"
    worker = CompiledGrpcWorker(compiled, endpoint, folder)
    try:
        yield worker.start()
    finally:
        worker.close()


def test_grpc_executions_authentication_and_shutdown(grpc_worker: CompiledGrpcWorker) -> None:
    import grpc

    response = grpc_worker.heartbeat(9)
    assert response.worker.pid == grpc_worker.proc.pid and not response.worker.secret
    data = batches_xy(count=4)
    call = grpc_worker.execute()
    results, metrics = call.run([symbol("loud", "upper", [2]), symbol("n", "add_one", [0])], data)
    assert results[2].column("loud").equals(pc.utf8_upper(data[2]["s"]))
    assert metrics.batches == 4
    with pytest.raises(grpc.RpcError) as refused:
        grpc_worker.manage(
            metadata=[("quiver-secret", secrets.token_hex(32))], heartbeat=pb.Heartbeat()
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert grpc_worker.heartbeat(2).refused_calls == 1
    assert grpc_worker.manage(shutdown=pb.Shutdown()).HasField("shutdown")
    assert grpc_worker.wait() == 0


def test_grpc_sigterm_exits_0(grpc_worker: CompiledGrpcWorker) -> None:
    grpc_worker.proc.send_signal(signal.SIGTERM)
    assert grpc_worker.wait() == 0
