"""``python -m quiver.worker --dialect spark``: shutdown, SIGTERM, endpoints and the wire codec.

docs/spark-protocol.md, sections 1, 5 and 7; every worker is a real process, the engine a grpcio
client (:mod:`spark_dialect_client`).
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pyarrow as pa
import pytest
from spark_dialect_client import (
    PYTHON_ROOT,
    TIMEOUT,
    SparkCall,
    SparkWorker,
    error_kind,
    int_batch,
    private_folder,
    running_worker,
    write_udf_file,
)

from quiver.protocol.items import UndecodableMessage
from quiver.spark_dialect.codec import (
    EngineCancel,
    IncomingData,
    OutgoingData,
    decode_request,
    encode_response,
)
from quiver.spark_dialect.endpoint import has_ipv6_loopback
from quiver.spark_dialect.proto import udf_message_pb2 as spb
from quiver.spark_dialect.proto import udf_service_pb2_grpc


@pytest.fixture(scope="module")
def udf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The UDFs the tests run."""
    return write_udf_file(tmp_path_factory.mktemp("spark_udfs"))


@pytest.fixture
def worker(udf_file: Path) -> Iterator[SparkWorker]:
    """A worker of the test's own: these tests end it."""
    with running_worker(udf_file) as started:
        yield started


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A private folder for sockets."""
    with private_folder() as folder:
        yield folder


def test_shutdown_idle_settles_and_exits_zero(worker: SparkWorker):
    assert worker.shutdown(cancel_sessions=False).sessions_settled
    assert worker.process.wait(TIMEOUT) == 0


def test_shutdown_with_cancel_ends_running_streams_then_exits(worker: SparkWorker):
    running = worker.call()
    running.init(worker.ref("nap"))
    running.send_batch(int_batch(300))
    idle = worker.call()
    idle.init(worker.ref("plus_one"))
    time.sleep(0.1)
    assert worker.shutdown(cancel_sessions=True).sessions_settled
    for call in (running, idle):
        message = call.recv()
        if message.HasField("data"):  # the batch that was running when Shutdown came
            message = call.recv()
        kind, error = error_kind(message.control.error.error)
        assert kind == "worker" and "shutting down" in error.message
        call.recv_control("cancel")
    assert worker.process.wait(TIMEOUT) == 0


def test_shutdown_without_cancel_refuses_new_streams_and_waits(worker: SparkWorker):
    call = worker.call()
    call.init(worker.ref("plus_one"))
    assert not worker.shutdown(cancel_sessions=False).sessions_settled
    refused = worker.call()
    refused.cancel()
    with pytest.raises(grpc.RpcError) as info:
        refused.recv()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert worker.process.poll() is None  # the open stream keeps it serving
    call.send_batch(int_batch(1))
    assert call.recv_batch().column(0).to_pylist() == [2]
    call.finish()
    call.recv_control("finish")
    assert call.ended()
    assert worker.process.wait(TIMEOUT) == 0


def test_sigterm_cancels_running_streams_and_exits_zero(worker: SparkWorker):
    call = worker.call()
    call.init(worker.ref("plus_one"))
    call.send_batch(int_batch(1))
    call.recv_batch()
    worker.process.send_signal(signal.SIGTERM)
    kind, _ = error_kind(call.recv_control("error").error)
    assert kind == "worker"
    call.recv_control("cancel")
    assert worker.process.wait(TIMEOUT) == 0


# ---- endpoints and process ----


def test_unix_socket_is_owner_only(worker: SparkWorker):
    info = os.stat(worker.connection)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600, oct(stat.S_IMODE(info.st_mode))


def test_bare_port_serves_on_both_loopbacks(udf_file: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tcp_worker = SparkWorker(str(port), udf_file, target=f"127.0.0.1:{port}")
    try:
        targets = [f"127.0.0.1:{port}"] + ([f"[::1]:{port}"] if has_ipv6_loopback() else [])
        for target in targets:
            with grpc.insecure_channel(target) as channel:
                call = SparkCall(udf_service_pb2_grpc.UdfWorkerStub(channel))
                call.init(tcp_worker.ref("plus_one"))
                call.send_batch(int_batch(5))
                assert call.recv_batch().column(0).to_pylist() == [6]
                call.finish()
                call.recv_control("finish")
                assert call.ended()
        assert tcp_worker.shutdown(cancel_sessions=False).sessions_settled
        assert tcp_worker.process.wait(TIMEOUT) == 0
    finally:
        tcp_worker.close()


def _run_worker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quiver.worker", "--dialect", "spark", "--id", "t", *args],
        cwd=PYTHON_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_non_loopback_tcp_host_is_refused_without_tls():
    done = _run_worker("--connection", "grpc+tcp:0.0.0.0:1")
    assert done.returncode == 2
    assert "--tls-cert" in done.stderr


def test_unknown_flag_is_refused():
    done = _run_worker("--connection", "1234", "--max-concurrency", "5")
    assert done.returncode == 2
    assert "--max-concurrency" in done.stderr


def test_socket_path_in_use_exits_one(socket_dir: Path):
    taken = socket_dir / "taken.sock"
    with socket.socket(socket.AF_UNIX) as holder:
        holder.bind(str(taken))
        done = _run_worker("--connection", str(taken))
    assert done.returncode == 1
    assert "taken.sock" in done.stderr


def test_port_in_use_exits_one():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        done = _run_worker("--connection", str(holder.getsockname()[1]))
    assert done.returncode == 1
    assert "cannot listen" in done.stderr


def test_non_loopback_tcp_host_is_served_with_tls(udf_file: Path, tmp_path: Path):
    from test_worker_grpc import _self_signed_certificate  # the quiver.v1 TLS test's certificate

    cert, key, cert_pem = _self_signed_certificate(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "quiver.worker", "--dialect", "spark", "--id", "t"]
        + ["--connection", f"grpc+tcp:0.0.0.0:{port}", "--tls-cert", str(cert)]
        + ["--tls-key", str(key)],
        cwd=PYTHON_ROOT,
    )
    credentials = grpc.ssl_channel_credentials(root_certificates=cert_pem)
    channel = grpc.secure_channel(f"localhost:{port}", credentials)
    try:
        stub = udf_service_pb2_grpc.UdfWorkerStub(channel)
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        call = SparkCall(stub)
        call.init(f"{udf_file}:plus_one")
        call.send_batch(int_batch(1))
        assert call.recv_batch().column(0).to_pylist() == [2]
        call.finish()
        call.recv_control("finish")
        assert call.ended()
    finally:
        channel.close()
        process.terminate()
        assert process.wait(TIMEOUT) == 0


# ---- the hand-written data codec ----


@pytest.mark.parametrize("rows", [0, 3, 70_000, 300_000])
def test_data_responses_parse_with_protobuf_and_align_arrow_bytes(rows: int):
    body = pa.record_batch({"x": pa.array(range(rows), type=pa.int64())}).serialize()
    raw = encode_response(OutgoingData((b"head", body)))
    expected = b"head" + body.to_pybytes()
    assert spb.UdfResponse.FromString(raw).data.data == expected
    if len(expected) < (1 << 21):  # past 2 MiB the length varints leave no room to pad
        assert raw.index(expected) % 8 == 0


def test_data_requests_are_read_in_place_and_cancel_is_seen_as_a_stop():
    raw = spb.UdfRequest(data=spb.DataRequest(data=b"arrow bytes")).SerializeToString()
    decoded = decode_request(raw)
    assert isinstance(decoded, IncomingData) and bytes(decoded.data) == b"arrow bytes"
    assert decoded.data.obj is raw  # a slice of what gRPC received, not a copy
    cancel = spb.UdfRequest(control=spb.UdfControlRequest(cancel=spb.Cancel(reason="r")))
    assert decode_request(cancel.SerializeToString()) == EngineCancel("r")
    assert isinstance(decode_request(b"\xff\xff"), UndecodableMessage)
