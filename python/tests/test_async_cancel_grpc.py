"""A Cancel reaches the calls an async UDF waits on over gRPC, as over uds and shm.

A real ``python -m quiver.worker --transport grpc`` process, driven by the grpcio engine of
test_worker_grpc.py; its UDF (udfs/async_http.py) calls a loopback HTTP server
(slow_http_server.py) that holds every request for a minute, so only a cancellation ends them.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from engine_harness import ref_udf
from slow_http_server import SlowServer
from test_worker_grpc import GrpcWorkerProcess, _unix_endpoint

from quiver._proto import pb


@pytest.fixture
def grpc_worker(tmp_path: Path) -> Iterator[GrpcWorkerProcess]:
    """Yield a fresh gRPC worker on a Unix socket."""
    folder = Path(tempfile.mkdtemp(prefix="qvr-"))
    process = GrpcWorkerProcess(_unix_endpoint(folder), tmp_path)
    try:
        yield process.start()
    finally:
        process.close()
        shutil.rmtree(folder, ignore_errors=True)


def _start_slow_batch(worker: GrpcWorkerProcess, server: SlowServer):  # noqa: ANN202
    """Start an execution whose one batch waits on four calls the server holds."""
    call = worker.execute()
    batch = pa.record_batch({"key": [f"k{i}" for i in range(4)], "port": [server.port] * 4})
    fetch = ref_udf("fetch", "async_http.py:fetch", [0, 1], pa.string())
    assert call.init([fetch], batch.schema).kind == "init_response"
    call.send_batch(0, batch)
    deadline = time.monotonic() + 10
    while server.in_flight < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.in_flight == 4, "the batch's calls did not reach the server"
    return call


def test_a_cancel_message_cuts_the_pending_calls_over_grpc(grpc_worker: GrpcWorkerProcess) -> None:
    with SlowServer(delay=60.0) as server:
        call = _start_slow_batch(grpc_worker, server)
        call.send(cancel=pb.Cancel(reason="test"))
        assert server.wait_idle(1.0), f"{server.in_flight} calls still pending after the Cancel"
        received = call.recv()  # no answer for the dropped batch
        assert received.kind == "cancel_response"
        assert received.message.cancel_response.metrics.batches == 0
        assert call.ended()
        assert server.abandoned == 4


def test_a_cancelled_execute_call_cuts_the_pending_calls(grpc_worker: GrpcWorkerProcess) -> None:
    with SlowServer(delay=60.0) as server:
        call = _start_slow_batch(grpc_worker, server)
        call.responses.cancel()  # the engine gives up on the call (it stopped, or timed out)
        assert server.wait_idle(1.0), f"{server.in_flight} calls still pending after the end"
        assert server.abandoned == 4
    # The worker serves the next call.
    batches = [pa.record_batch({"x": pa.array([1, 2, 3], pa.int64())})]
    identity = ref_udf("same", "arith.py:identity", [0], pa.int64())
    results, _ = grpc_worker.execute().run([identity], batches)
    assert results[0].column(0).to_pylist() == [1, 2, 3]
