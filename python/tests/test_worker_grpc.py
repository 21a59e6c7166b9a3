"""End-to-end tests of ``python -m quiver.worker --transport grpc`` against a Python gRPC engine.

Every worker is a real process serving on a real Unix socket or loopback TCP port; the engine side
is a grpcio client built from the generated ``UdfWorker`` stub.
"""

from __future__ import annotations

import ctypes
import datetime
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from engine_harness import (
    PYTHON_ROOT,
    TESTS_DIR,
    ExpectingReceiver,
    Received,
    batches_xy,
    ipc_bytes,
    ref_udf,
)
from udfs import arith, series

from quiver._proto import pb
from quiver.io import ZeroCopyByteStream
from quiver.protocol.grpc_codec import (
    IncomingBatch,
    OutgoingBatch,
    UndecodableMessage,
    decode_engine_message,
    encode_worker_message,
)
from quiver.transport import EndpointError
from quiver.transport.grpc import GrpcEndpoint, parse_grpc_endpoint
from quiver.v1 import quiver_pb2_grpc
from quiver.worker.batch_codec import decode_batch

TIMEOUT = 20.0
_HALF_CLOSE = object()
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # grpc-core's default :authority for a unix: target is the socket path, which some HTTP/2
    # servers (the Rust SDK's) refuse as malformed; a host name is what HTTP/2 expects.
    ("grpc.default_authority", "localhost"),
]


def free_port() -> int:
    """Return a loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ExecuteCall(ExpectingReceiver):
    """Play the engine's end of one Execute call: a request queue and the response stream."""

    def __init__(self, stub: quiver_pb2_grpc.UdfWorkerStub, metadata: list[tuple[str, str]]):
        self._requests: queue.Queue[object] = queue.Queue()
        self.responses = stub.Execute(
            iter(self._requests.get, _HALF_CLOSE), metadata=metadata, timeout=TIMEOUT
        )

    def send(self, **kind: object) -> None:
        """Send one EngineMessage, e.g. ``send(finish=pb.Finish())``."""
        self._requests.put(pb.EngineMessage(**kind))

    def send_batch(self, sequence: int, batch: pa.RecordBatch) -> None:
        """Send one batch as EngineMessage{data}."""
        data = pb.Data(sequence=sequence, arrow_ipc=ipc_bytes(batch).to_pybytes())
        self._requests.put(pb.EngineMessage(data=data))

    def half_close(self) -> None:
        """End the request stream."""
        self._requests.put(_HALF_CLOSE)

    def recv(self) -> Received:
        """Receive the worker's next message (fails when the call ended)."""
        message = next(self.responses)
        if message.WhichOneof("kind") == "data":
            batches = list(pa.ipc.open_stream(message.data.arrow_ipc))
            assert len(batches) == 1
            return Received(sequence=message.data.sequence, batch=batches[0])
        return Received(message=message)

    def ended(self) -> bool:
        """Tell whether the worker ended the call with status OK and nothing more."""
        self.half_close()  # lets the client's request thread finish; a second one is harmless
        try:
            extra = next(self.responses)
        except StopIteration:
            return self.responses.code() == grpc.StatusCode.OK
        raise AssertionError(f"the call went on with {extra}")

    def init(self, udfs: list[pb.UdfDefinition], schema: pa.Schema | None, **fields) -> Received:
        """Send Init (protocol 1, Arrow IPC) and return the worker's answer."""
        self.send(
            init=pb.Init(
                protocol_version=fields.pop("protocol_version", 1),
                data_format=pb.ARROW_IPC_STREAM,
                udfs=udfs,
                input_schema=schema.serialize().to_pybytes() if schema is not None else b"",
                **fields,
            )
        )
        return self.recv()

    def run(
        self, udfs: list[pb.UdfDefinition], batches: list[pa.RecordBatch], window: int = 3
    ) -> tuple[list[pa.RecordBatch], pb.Metrics]:
        """Run the call's one execution, keeping up to ``window`` batches in flight."""
        answer = self.init(udfs, batches[0].schema if batches else None)
        assert answer.kind == "init_response", answer.message
        schema = pa.ipc.read_schema(pa.py_buffer(answer.message.init_response.result_schema))
        results: list[pa.RecordBatch] = []
        for sequence, batch in enumerate(batches):
            self.send_batch(sequence, batch)
            if sequence + 1 - len(results) >= window:
                results.append(self._result(len(results), schema))
        while len(results) < len(batches):
            results.append(self._result(len(results), schema))
        self.send(finish=pb.Finish())
        self.half_close()
        metrics = self.expect("finish_response").message.finish_response.metrics
        assert self.ended()
        return results, metrics

    def _result(self, sequence: int, schema: pa.Schema) -> pa.RecordBatch:
        """Receive the result of batch ``sequence`` and check it against the result schema."""
        received = self.expect("data")
        assert received.sequence == sequence
        assert received.batch.schema.equals(schema)
        return received.batch


class GrpcWorkerProcess:
    """Run ``python -m quiver.worker --transport grpc`` and hold a client channel to it."""

    def __init__(
        self,
        endpoint: str,
        folder: Path,
        worker_id: str = "g1",
        tls: tuple[Path, Path] | None = None,
        root_certificate: bytes | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.worker_id = worker_id
        self.secret = secrets.token_hex(32)
        self.stderr_path = folder / f"{worker_id}.stderr"
        self.tls = tls
        self.root_certificate = root_certificate
        self.proc: subprocess.Popen | None = None
        self.channel: grpc.Channel | None = None
        self.stub: quiver_pb2_grpc.UdfWorkerStub | None = None
        self.served_endpoint = ""

    def start(self) -> GrpcWorkerProcess:
        """Start the worker and wait until it answers a heartbeat."""
        env = dict(os.environ)
        env["QUIVER_WORKER_SECRET"] = self.secret
        env["PYTHONPATH"] = os.pathsep.join([str(PYTHON_ROOT), str(TESTS_DIR)])
        command = [*self.worker_command(), "--transport", "grpc"]
        command += ["--id", self.worker_id, "--connection", self.endpoint]
        if self.tls is not None:
            command += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(command, env=env, stdout=err, stderr=err)
        self.served_endpoint = self._wait_for_ready_line()
        target = self.served_endpoint.removeprefix("grpc+tcp:").replace("grpc+unix:", "unix:")
        if self.root_certificate is None:
            self.channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates=self.root_certificate)
            options = [*_CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", "localhost")]
            self.channel = grpc.secure_channel(target, credentials, options=options)
        self.stub = quiver_pb2_grpc.UdfWorkerStub(self.channel)
        self.heartbeat(1)
        return self

    def worker_command(self) -> list[str]:
        """Return the program that starts the worker (the test appends the gRPC arguments)."""
        return [sys.executable, "-m", "quiver.worker"]

    def _wait_for_ready_line(self) -> str:
        """Wait for the worker's "serving grpc on ENDPOINT" line; return ENDPOINT."""
        prefix = re.escape(f"quiver-worker[{self.worker_id}]")
        pattern = re.compile(rf"^{prefix} serving grpc on (\S+)$")
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if match := pattern.match(line):
                    return match.group(1)
            assert self.proc.poll() is None, f"the worker exited early:\n{self.log()}"
            time.sleep(0.02)
        raise AssertionError(f"the worker did not start serving:\n{self.log()}")

    @property
    def metadata(self) -> list[tuple[str, str]]:
        """Return the call metadata that carries the secret."""
        return [("quiver-secret", self.secret)]

    def manage(self, metadata: list[tuple[str, str]] | None = None, **kind) -> pb.ManageResponse:
        """Make a Manage call (with the right secret unless ``metadata`` is given)."""
        return self.stub.Manage(
            pb.ManageRequest(**kind),
            metadata=self.metadata if metadata is None else metadata,
            timeout=TIMEOUT,
        )

    def heartbeat(self, nonce: int) -> pb.ManageResponse:
        """Send a heartbeat and check its echo."""
        response = self.manage(heartbeat=pb.Heartbeat(nonce=nonce))
        assert response.heartbeat.nonce == nonce
        return response

    def execute(self) -> ExecuteCall:
        """Open an Execute call."""
        return ExecuteCall(self.stub, self.metadata)

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Wait for the worker to exit; return its exit status."""
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        """Return what the worker wrote to stderr (and stdout)."""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        """Close the channel and kill the worker if it still runs."""
        if self.channel is not None:
            self.channel.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)


def _unix_endpoint(folder: Path) -> str:
    """Return a grpc+unix endpoint in ``folder`` (kept short: socket paths are limited)."""
    return f"grpc+unix:{folder}/w.sock"


@pytest.fixture(scope="module")
def short_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a private folder with a path short enough for Unix sockets."""
    folder = tmp_path_factory.mktemp("g")
    os.chmod(folder, 0o700)
    return folder


@pytest.fixture(scope="module", params=["unix", "tcp"])
def worker(request: pytest.FixtureRequest, short_dir: Path) -> Iterator[GrpcWorkerProcess]:
    """Yield a worker shared by a module's tests, on a Unix socket and on loopback TCP."""
    if request.param == "unix":
        endpoint = _unix_endpoint(short_dir / "shared")
        (short_dir / "shared").mkdir()
    else:
        endpoint = f"grpc+tcp::{free_port()}"  # an empty host means loopback
    process = GrpcWorkerProcess(endpoint, short_dir, worker_id=f"shared-{request.param}")
    try:
        yield process.start()
    finally:
        process.close()


@pytest.fixture
def own_worker(tmp_path: Path) -> Iterator[GrpcWorkerProcess]:
    """Yield a fresh worker on a Unix socket, for tests that stop it."""
    # Not in tmp_path: its long test-named folders could pass the ~100-byte socket path limit.
    folder = Path(tempfile.mkdtemp(prefix="qvr-"))
    process = GrpcWorkerProcess(_unix_endpoint(folder), tmp_path)
    try:
        yield process.start()
    finally:
        process.close()
        shutil.rmtree(folder, ignore_errors=True)


# ---- serving and Manage ----


def test_ready_line_heartbeat_and_worker_info(worker: GrpcWorkerProcess) -> None:
    if worker.endpoint.startswith("grpc+tcp::"):
        assert worker.served_endpoint == worker.endpoint.replace("::", ":127.0.0.1:")
    else:
        assert worker.served_endpoint == worker.endpoint
    response = worker.heartbeat(2**63 + 5)
    assert response.worker.worker_id == worker.worker_id
    assert response.worker.pid == worker.proc.pid
    assert response.worker.protocol_version == 1
    assert response.worker.runtime.startswith("python 3.") and "pyarrow" in response.worker.runtime
    assert response.worker.secret == b""  # never sent back


def test_missing_and_wrong_secret_are_refused_and_counted(worker: GrpcWorkerProcess) -> None:
    before = worker.heartbeat(3).refused_calls
    with pytest.raises(grpc.RpcError) as missing:
        worker.manage(metadata=[], heartbeat=pb.Heartbeat(nonce=1))
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "no quiver-secret" in missing.value.details()
    call = ExecuteCall(worker.stub, [("quiver-secret", "0" * 64)])
    with pytest.raises(grpc.RpcError) as wrong:
        call.recv()
    assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "quiver-secret metadata is wrong" in wrong.value.details()
    call.half_close()
    assert worker.heartbeat(4).refused_calls == before + 2
    assert worker.log().count("refused a ") >= 2


# ---- executions ----


def test_identity_over_several_batches(worker: GrpcWorkerProcess) -> None:
    batches = batches_xy(count=6)
    results, metrics = worker.execute().run([ref_udf("same", "arith.py:identity", [0])], batches)
    for batch, result in zip(batches, results, strict=True):
        assert result.column("same").equals(batch["x"])
    assert metrics.batches == 6 and metrics.rows_in == 30 and metrics.rows_out == 30
    assert metrics.udf_nanos > 0 and metrics.codec_nanos > 0 and metrics.peak_rss_bytes > 2**20


def test_several_udfs_of_every_eval_type(worker: GrpcWorkerProcess) -> None:
    batches = batches_xy(count=3)
    udfs = [
        ref_udf("total", "arith.py:add", [0, 1]),
        ref_udf("loud", "arith.py:shout", [2]),
        ref_udf("scaled", "series.py:scale", [0]),
        ref_udf("shifted", "arith.py:offset_iter", [1]),
    ]
    results, _ = worker.execute().run(udfs, batches)
    for batch, result in zip(batches, results, strict=True):
        x, y, s = batch.columns
        assert result.column("total").equals(arith.add(x, y))
        assert result.column("loud").equals(arith.shout(s))
        expected = pa.Array.from_pandas(series.scale(x.to_pandas()), type=pa.float64())
        assert result.column("scaled").equals(expected)
        assert result.column("shifted").equals(pc.add(y, 100))
    assert "offset_iter: teardown ran" in worker.log()


def test_zero_batches(worker: GrpcWorkerProcess) -> None:
    results, metrics = worker.execute().run([ref_udf("same", "arith.py:identity", [0])], [])
    assert results == [] and metrics.batches == 0


def test_batch_larger_than_grpc_default_message_limit(worker: GrpcWorkerProcess) -> None:
    big = pa.record_batch({"x": pa.array(range(1_500_000), type=pa.int64())})  # 12 MB
    results, _ = worker.execute().run([ref_udf("same", "arith.py:identity", [0])], [big])
    assert results[0].column(0).equals(big["x"])


def test_cancel_mid_stream(worker: GrpcWorkerProcess) -> None:
    batches = batches_xy(count=8)
    call = worker.execute()
    assert call.init([ref_udf("same", "arith.py:identity", [0])], batches[0].schema).kind == (
        "init_response"
    )
    for sequence, batch in enumerate(batches):
        call.send_batch(sequence, batch)
    call.send(cancel=pb.Cancel(reason="test"))
    call.half_close()
    answered = []
    while (received := call.recv()).kind == "data":
        answered.append(received.sequence)
        assert received.batch.column(0).equals(batches[received.sequence]["x"])
    assert received.kind == "cancel_response"
    assert answered == list(range(len(answered)))
    assert received.message.cancel_response.metrics.batches == len(answered)
    assert call.ended()


def test_udf_error_is_a_user_error_and_the_worker_serves_the_next_call(
    worker: GrpcWorkerProcess,
) -> None:
    batches = batches_xy(count=2)
    call = worker.execute()
    call.init([ref_udf("boom", "faulty.py:divide_by_zero", [0])], batches[0].schema)
    call.send_batch(0, batches[0])
    error = call.expect("error").message.error
    assert error.has_sequence and error.sequence == 0
    assert error.user_error.udf_name == "boom"
    assert error.user_error.error_class == "ZeroDivisionError"
    assert "faulty.py" in error.user_error.traceback and "quiver/worker" not in (
        error.user_error.traceback
    )
    call.send_batch(1, batches[1])  # ignored after the Error
    call.send(heartbeat=pb.Heartbeat(nonce=9))
    assert call.expect("heartbeat").message.heartbeat.nonce == 9
    call.send(cancel=pb.Cancel())
    call.expect("cancel_response")
    assert call.ended()
    results, _ = worker.execute().run([ref_udf("ok", "arith.py:identity", [0])], batches)
    assert len(results) == 2


def test_executions_on_two_calls_run_side_by_side(worker: GrpcWorkerProcess) -> None:
    batch = batches_xy(count=1)[0]
    first, second = worker.execute(), worker.execute()
    first.init([ref_udf("a", "arith.py:identity", [0])], batch.schema)
    second.init([ref_udf("b", "arith.py:add", [0, 1])], batch.schema)
    second.send_batch(0, batch)
    first.send_batch(7, batch)
    assert second.expect("data").batch.column(0).equals(pc.add(batch["x"], batch["y"]))
    assert first.expect("data").sequence == 7
    for call in (first, second):
        call.send(finish=pb.Finish())
        call.half_close()
        assert call.expect("finish_response").message.finish_response.metrics.batches == 1
        assert call.ended()


# ---- protocol errors ----


def test_second_init_in_one_call_is_a_protocol_error(worker: GrpcWorkerProcess) -> None:
    udfs = [ref_udf("same", "arith.py:identity", [0])]
    call = worker.execute()
    assert call.init(udfs, None).kind == "init_response"
    error = call.init(udfs, None).message.error
    assert "Init during an execution" in error.protocol_error.message
    call.send(cancel=pb.Cancel())
    call.half_close()
    call.expect("cancel_response")
    assert call.ended()


def test_unsupported_protocol_version_is_a_protocol_error(worker: GrpcWorkerProcess) -> None:
    call = worker.execute()
    answer = call.init([ref_udf("same", "arith.py:identity", [0])], None, protocol_version=2)
    error = answer.message.error
    assert error.WhichOneof("kind") == "protocol_error"
    assert "protocol_version 2" in error.protocol_error.message
    call.send(finish=pb.Finish())  # failed: Finish is answered as usual, and ends the call
    call.half_close()
    call.expect("finish_response")
    assert call.ended()


def test_messages_not_allowed_on_an_idle_call(worker: GrpcWorkerProcess) -> None:
    call = worker.execute()
    call.send_batch(3, batches_xy(count=1)[0])
    error = call.expect("error").message.error
    assert "outside an execution" in error.protocol_error.message and error.sequence == 3
    call.send(shutdown=pb.Shutdown())
    assert "Manage call" in call.expect("error").message.error.protocol_error.message
    call.half_close()  # nothing ran: the call ends without a response
    assert call.ended()


def test_requests_ending_before_finish_is_a_protocol_error(worker: GrpcWorkerProcess) -> None:
    call = worker.execute()
    call.init([ref_udf("same", "arith.py:identity", [0])], None)
    call.half_close()
    error = call.expect("error").message.error
    assert "ended before Finish or Cancel" in error.protocol_error.message
    assert call.ended()


def test_bad_arrow_bytes_are_a_protocol_error(worker: GrpcWorkerProcess) -> None:
    call = worker.execute()
    call.init([ref_udf("same", "arith.py:identity", [0])], None)
    call.send(data=pb.Data(sequence=4, arrow_ipc=b"notarrow"))
    error = call.expect("error").message.error
    assert error.sequence == 4 and "not a valid Arrow IPC stream" in error.protocol_error.message
    call.send(cancel=pb.Cancel())
    call.expect("cancel_response")
    call.half_close()


# ---- stopping ----


def test_manage_shutdown_exits_0(own_worker: GrpcWorkerProcess) -> None:
    response = own_worker.manage(shutdown=pb.Shutdown())
    assert response.WhichOneof("kind") == "shutdown" and response.worker.worker_id == "g1"
    assert own_worker.wait() == 0
    assert not Path(own_worker.endpoint.removeprefix("grpc+unix:")).exists()


def test_shutdown_with_cancel_running_cancels_the_execution(own_worker: GrpcWorkerProcess) -> None:
    batch = batches_xy(count=1)[0]
    call = own_worker.execute()
    call.init([ref_udf("same", "arith.py:identity", [0])], batch.schema)
    call.send_batch(0, batch)
    call.expect("data")
    response = own_worker.manage(shutdown=pb.Shutdown(cancel_running=True))
    assert response.shutdown.cancel_running
    assert call.expect("cancel_response").message.cancel_response.metrics.batches == 1
    assert call.ended()
    assert own_worker.wait() == 0


def test_shutdown_waits_for_the_running_execution(own_worker: GrpcWorkerProcess) -> None:
    batch = batches_xy(count=1)[0]
    call = own_worker.execute()
    call.init([ref_udf("same", "arith.py:identity", [0])], batch.schema)
    answers: list[pb.ManageResponse] = []
    manage = threading.Thread(
        target=lambda: answers.append(own_worker.manage(shutdown=pb.Shutdown()))
    )
    manage.start()
    time.sleep(0.3)
    assert not answers  # still waiting: the execution has not ended
    call.send_batch(0, batch)
    call.expect("data")
    call.send(finish=pb.Finish())
    call.half_close()
    call.expect("finish_response")
    manage.join(TIMEOUT)
    assert answers and answers[0].WhichOneof("kind") == "shutdown"
    assert own_worker.wait() == 0
    with pytest.raises(grpc.RpcError):  # no new executions once shutting down
        own_worker.execute().recv()


def test_sigterm_during_a_udf_exits_0(own_worker: GrpcWorkerProcess) -> None:
    batch = batches_xy(count=1)[0]
    call = own_worker.execute()
    call.init([ref_udf("slow", "slow.py:sleepy", [0])], batch.schema)
    call.send_batch(0, batch)
    deadline = time.monotonic() + 10
    while "sleepy: started" not in own_worker.log() and time.monotonic() < deadline:
        time.sleep(0.02)
    own_worker.proc.send_signal(signal.SIGTERM)
    assert own_worker.wait(timeout=8) == 0
    assert "SIGTERM" in own_worker.log()


# ---- command line and endpoints ----


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("grpc+unix:/tmp/w.sock", GrpcEndpoint(unix_path="/tmp/w.sock")),
        ("grpc+unix:///tmp/w.sock", GrpcEndpoint(unix_path="/tmp/w.sock")),
        ("grpc+tcp::50051", GrpcEndpoint(host="127.0.0.1", port=50051)),
        ("grpc+tcp:localhost:7", GrpcEndpoint(host="localhost", port=7)),
        ("grpc+tcp:[::1]:8", GrpcEndpoint(host="::1", port=8)),
        ("grpc+tcp:0.0.0.0:9", GrpcEndpoint(host="0.0.0.0", port=9)),
    ],
)
def test_endpoints(endpoint: str, expected: GrpcEndpoint) -> None:
    parsed = parse_grpc_endpoint(endpoint)
    assert parsed == expected
    assert parsed.is_local == (expected.host != "0.0.0.0")


@pytest.mark.parametrize("endpoint", ["unix:/tmp/w.sock", "grpc+tcp:host", "grpc+unix:", "x"])
def test_bad_endpoints(endpoint: str) -> None:
    with pytest.raises(EndpointError):
        parse_grpc_endpoint(endpoint)


def test_non_loopback_host_without_tls_is_a_usage_error() -> None:
    env = dict(os.environ, QUIVER_WORKER_SECRET="s", PYTHONPATH=str(PYTHON_ROOT))
    command = [sys.executable, "-m", "quiver.worker", "--transport", "grpc", "--id", "x"]
    result = subprocess.run(
        [*command, "--connection", "grpc+tcp:0.0.0.0:0"], env=env, capture_output=True, timeout=30
    )
    assert result.returncode == 2
    assert b"--tls-cert" in result.stderr


# ---- TLS ----


def _self_signed_certificate(folder: Path) -> tuple[Path, Path, bytes]:
    """Write a self-signed certificate for localhost; return (cert file, key file, cert PEM)."""
    x509 = pytest.importorskip(
        "cryptography.x509", reason="the TLS test makes its certificate with `cryptography`"
    )
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, cert_pem


def test_tls(tmp_path: Path) -> None:
    cert, key, cert_pem = _self_signed_certificate(tmp_path)
    process = GrpcWorkerProcess(
        "grpc+tcp:127.0.0.1:0", tmp_path, tls=(cert, key), root_certificate=cert_pem
    )
    try:
        process.start()
        assert re.fullmatch(r"grpc\+tcp:127\.0\.0\.1:\d+", process.served_endpoint)
        assert not process.served_endpoint.endswith(":0")  # the port actually bound
        batches = batches_xy(count=2)
        results, _ = process.execute().run([ref_udf("same", "arith.py:identity", [0])], batches)
        assert results[1].column(0).equals(batches[1]["x"])
        plaintext = grpc.insecure_channel(process.served_endpoint.removeprefix("grpc+tcp:"))
        with pytest.raises(grpc.RpcError):
            quiver_pb2_grpc.UdfWorkerStub(plaintext).Manage(
                pb.ManageRequest(heartbeat=pb.Heartbeat()), metadata=process.metadata, timeout=2
            )
        plaintext.close()
    finally:
        process.close()


# ---- the hand-written Data codec ----


def _address_range(raw: bytes) -> range:
    """Return the memory addresses of ``raw``'s bytes."""
    start = ctypes.cast(ctypes.c_char_p(raw), ctypes.c_void_p).value
    return range(start, start + len(raw))


@pytest.mark.parametrize("sequence", [0, 1, 300, 2**35, 2**64 - 1])
@pytest.mark.parametrize("rows", [0, 3, 70_000])
def test_data_messages_are_aligned_and_read_in_place(sequence: int, rows: int) -> None:
    batch = pa.record_batch({"x": pa.array(range(rows), type=pa.int64())})
    body = ipc_bytes(batch)
    raw = encode_worker_message(OutgoingBatch(sequence, body))
    # Any protobuf parser reads it (the padding is over-long varints) ...
    expected = pb.WorkerMessage(data=pb.Data(sequence=sequence, arrow_ipc=body.to_pybytes()))
    assert pb.WorkerMessage.FromString(raw) == expected
    # ... and the Arrow bytes start 8-aligned, so reading them back copies nothing.
    if sequence < 2**63:  # past that the sequence's own varint leaves no room to pad
        assert raw.index(body.to_pybytes()) % 8 == 0
    decoded = decode_engine_message(raw)  # EngineMessage.data has the same field number
    assert isinstance(decoded, IncomingBatch) and decoded.sequence == sequence
    assert decoded.arrow_ipc.obj is raw
    stream = ZeroCopyByteStream()
    stream.add_next_chunk(decoded.arrow_ipc)
    stream.finish()
    result = decode_batch(stream)
    assert result.equals(batch)
    addresses = _address_range(raw)
    buffers = [buf for buf in result.column(0).buffers() if buf is not None and buf.size]
    if sequence < 2**63:
        assert all(buf.address in addresses for buf in buffers)


def test_protobuf_written_data_messages_decode_in_place() -> None:
    body = ipc_bytes(batches_xy(count=1)[0]).to_pybytes()
    raw = pb.EngineMessage(data=pb.Data(sequence=9, arrow_ipc=body)).SerializeToString()
    decoded = decode_engine_message(raw)
    assert isinstance(decoded, IncomingBatch) and decoded.sequence == 9
    assert decoded.arrow_ipc.obj is raw and bytes(decoded.arrow_ipc) == body


def test_other_engine_messages_go_through_protobuf() -> None:
    finish = pb.EngineMessage(finish=pb.Finish())
    assert decode_engine_message(finish.SerializeToString()) == finish
    # Data with an unknown field: protobuf parses it, the batch still comes out.
    odd = pb.EngineMessage(data=pb.Data(sequence=2, arrow_ipc=b"abc")).SerializeToString()
    odd = odd[:1] + bytes([odd[1] + 2]) + odd[2:] + b"\x18\x01"  # Data field 3 = 1
    decoded = decode_engine_message(odd)
    assert isinstance(decoded, IncomingBatch) and decoded.sequence == 2
    assert bytes(decoded.arrow_ipc) == b"abc"
    assert isinstance(decode_engine_message(b"\x1a\x05\x08"), UndecodableMessage)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="watches processes through /proc")
def test_worker_stops_when_the_process_that_started_it_exits(tmp_path: Path) -> None:
    # A go-between process starts the worker, waits until it serves, prints its pid and exits,
    # as a crashed engine would; the orphaned worker must not serve on forever.
    folder = Path(tempfile.mkdtemp(prefix="qvr-"))
    log = tmp_path / "orphan.stderr"
    starter = (
        "import subprocess, sys, time\n"
        "with open(sys.argv[1], 'wb') as log:\n"
        "    proc = subprocess.Popen(sys.argv[2:], stdout=log, stderr=log)\n"
        "deadline = time.monotonic() + 20\n"
        "while b'serving grpc' not in open(sys.argv[1], 'rb').read():\n"
        "    assert time.monotonic() < deadline and proc.poll() is None\n"
        "    time.sleep(0.02)\n"
        "print(proc.pid, flush=True)\n"
    )
    env = dict(os.environ, QUIVER_WORKER_SECRET="s")
    env["PYTHONPATH"] = os.pathsep.join([str(PYTHON_ROOT), str(TESTS_DIR)])
    worker_command = [sys.executable, "-m", "quiver.worker", "--transport", "grpc", "--id", "o"]
    worker_command += ["--connection", _unix_endpoint(folder)]
    pid = None
    try:
        result = subprocess.run(
            [sys.executable, "-c", starter, str(log), *worker_command],
            env=env,
            capture_output=True,
            timeout=TIMEOUT,
            check=True,
        )
        pid = int(result.stdout)
        deadline = time.monotonic() + TIMEOUT
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # not our child: poll until it is gone
        assert not Path(f"/proc/{pid}").exists(), "the orphaned worker still runs"
        assert "the process that started the worker exited" in log.read_text()
    finally:
        if pid is not None and Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
