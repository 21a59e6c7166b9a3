"""The engine's side for the tests of ``python -m quiver.worker --dialect spark``.

A grpcio client playing Spark's engine (the stub generated from ``proto/spark``) against a real
worker process on a real Unix socket or loopback TCP port, the UDFs it runs, and the fixtures
the test files share.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pyarrow as pa

from quiver.spark_dialect.proto import common_pb2, udf_service_pb2_grpc
from quiver.spark_dialect.proto import udf_message_pb2 as spb

PYTHON_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 20.0
_HALF_CLOSE = object()
_END = object()

UDF_SOURCE = '''
import time

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import quiver


@quiver.udf(returns="int64")
def plus_one(x: pa.Array) -> pa.Array:
    return pc.add(x, 1)


@quiver.udf(returns="int64")
def add(x: pa.Array, y: pa.Array) -> pa.Array:
    return pc.add(x, y)


@quiver.udf(returns="string")
def shout(s: pd.Series) -> pd.Series:
    return s.str.upper()


@quiver.udf(returns="int64")
def fails(x: pa.Array) -> pa.Array:
    if pc.any(pc.equal(x, 13)).as_py():
        raise ValueError("thirteen is unlucky")
    return x


@quiver.udf(returns="int64")
def nap(ms: pa.Array) -> pa.Array:
    """Sleep as many milliseconds as the first value says."""
    time.sleep(ms[0].as_py() / 1000)
    return ms


@quiver.udf(returns="int64")
def wrong_length(x: pa.Array) -> pa.Array:
    return x.slice(1)


class Scaled:
    def __init__(self, factor=1):
        self.factor = factor

    def __call__(self, x: pa.Array) -> pa.Array:
        return pc.multiply(x, self.factor)


scaled = quiver.udf(returns="int64")(Scaled)
'''


# ---- the engine's side ----


def ipc_stream(*batches: pa.RecordBatch) -> bytes:
    """Encode batches as one Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batches[0].schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def int_batch(*values: int | None, name: str = "x") -> pa.RecordBatch:
    """One int64 column."""
    return pa.record_batch({name: pa.array(values, type=pa.int64())})


def schema_bytes(schema: pa.Schema) -> bytes:
    """An encapsulated Arrow IPC schema message."""
    return schema.serialize().to_pybytes()


INT_SCHEMA = pa.schema([("x", pa.int64())])


class SparkCall:
    """Play the engine's end of one Execute stream: a request queue and the responses."""

    def __init__(self, stub: udf_service_pb2_grpc.UdfWorkerStub) -> None:
        self._requests: queue.Queue[object] = queue.Queue()
        self.responses = stub.Execute(iter(self._requests.get, _HALF_CLOSE), timeout=TIMEOUT)
        # Read on a thread of its own, so that a test can also check that nothing comes.
        self._received: queue.Queue[object] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for message in self.responses:
                self._received.put(message)
            self._received.put(_END)
        except grpc.RpcError as exc:
            self._received.put(exc)

    def send(self, **control: object) -> None:
        """Send one control message, e.g. ``send(finish=spb.Finish())``."""
        self._requests.put(spb.UdfRequest(control=spb.UdfControlRequest(**control)))

    def send_data(self, data: bytes) -> None:
        """Send one DataRequest."""
        self._requests.put(spb.UdfRequest(data=spb.DataRequest(data=data)))

    def send_batch(self, batch: pa.RecordBatch) -> None:
        """Send one batch as a one-batch IPC stream."""
        self.send_data(ipc_stream(batch))

    def cancel(self, reason: str = "test") -> None:
        """Send Cancel."""
        self.send(cancel=spb.Cancel(reason=reason))

    def finish(self) -> None:
        """Send Finish."""
        self.send(finish=spb.Finish())

    def half_close(self) -> None:
        """End the request stream."""
        self._requests.put(_HALF_CLOSE)

    def recv(self, timeout: float = TIMEOUT) -> spb.UdfResponse:
        """Receive the worker's next response (raises queue.Empty after ``timeout``)."""
        item = self._received.get(timeout=timeout)
        if isinstance(item, grpc.RpcError):
            raise item
        assert item is not _END, "the stream ended"
        return item  # type: ignore[return-value]

    def recv_control(self, kind: str) -> spb.Message:
        """Receive a control response, which must be of ``kind`` (init, error, finish, ...)."""
        message = self.recv()
        got = message.control.WhichOneof("control") if message.HasField("control") else "data"
        assert got == kind, f"expected {kind}, got {message}"
        return getattr(message.control, kind)

    def recv_batch(self) -> pa.RecordBatch:
        """Receive a DataResponse: one IPC stream of one batch."""
        message = self.recv()
        assert message.HasField("data"), f"expected data, got {message}"
        batches = list(pa.ipc.open_stream(message.data.data))
        assert len(batches) == 1
        return batches[0]

    def init(
        self,
        function: str,
        schema: pa.Schema = INT_SCHEMA,
        *,
        payload: bytes | None = None,
        payload_format: str = "python/ref",
        **fields: object,
    ) -> spb.InitResponse:
        """Send Init for ``function`` of the test's UDF file; return the InitResponse."""
        udf = spb.UdfPayload(
            payload=payload if payload is not None else function.encode(),
            format=payload_format,
            **fields.pop("udf", {}),  # type: ignore[arg-type]
        )
        init = spb.Init(
            data_format=fields.pop("data_format", common_pb2.ARROW),
            udf=udf,
            input_schema=schema_bytes(schema) if schema is not None else None,
            **fields,  # type: ignore[arg-type]
        )
        self.send(init=init)
        return self.recv_control("init")

    def ended(self) -> bool:
        """Tell whether the worker ended the stream with status OK and nothing more."""
        self.half_close()
        item = self._received.get(timeout=TIMEOUT)
        if item is _END:
            return self.responses.code() == grpc.StatusCode.OK
        raise AssertionError(f"the stream went on with {item}")


class SparkWorker:
    """A ``python -m quiver.worker --dialect spark`` process and a client channel to it."""

    def __init__(self, connection: str, udf_file: Path, target: str | None = None) -> None:
        self.udf_file = udf_file
        self.connection = connection
        self._log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "quiver.worker", "--dialect", "spark", "--id", "t"]
            + ["--connection", connection],
            cwd=PYTHON_ROOT,
            stderr=self._log,  # a file, not a pipe: a pipe nobody reads would block the worker
        )
        self.channel = grpc.insecure_channel(
            target or f"unix:{connection}",
            options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)],
        )
        self.stub = udf_service_pb2_grpc.UdfWorkerStub(self.channel)
        self.wait_ready()

    def ref(self, function: str) -> str:
        """The python/ref payload of one function of the test's UDF file."""
        return f"{self.udf_file}:{function}"

    def call(self) -> SparkCall:
        """Open one Execute stream."""
        return SparkCall(self.stub)

    def heartbeat(self, timeout: float = TIMEOUT) -> dict[str, str]:
        """Send Heartbeat; return the metrics."""
        answer = self.stub.Manage(spb.WorkerRequest(heartbeat=spb.Heartbeat()), timeout=timeout)
        return dict(answer.heartbeat.metrics)

    def shutdown(self, cancel_sessions: bool) -> spb.ShutdownResponse:
        """Send ShutdownRequest."""
        request = spb.ShutdownRequest(reason="test", cancel_sessions=cancel_sessions)
        return self.stub.Manage(spb.WorkerRequest(shutdown=request), timeout=TIMEOUT).shutdown

    def wait_ready(self) -> None:
        """Poll Heartbeat until the worker answers (the contract's readiness check)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                metrics = self.heartbeat(timeout=1.0)
                assert metrics["pid"] == str(self.process.pid)
                return
            except grpc.RpcError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the worker did not start: {self.stderr()}") from None
                time.sleep(0.02)

    def stderr(self) -> str:
        """The worker's log so far."""
        self._log.seek(0)
        return self._log.read()

    def close(self) -> None:
        """Stop the worker if it still runs."""
        self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(TIMEOUT)
        self._log.close()


def write_udf_file(folder: Path) -> Path:
    """Write the UDFs the tests run into ``folder``; return the file the worker loads by path."""
    path = folder / "spark_udfs.py"
    path.write_text(UDF_SOURCE)
    return path


@contextmanager
def private_folder() -> Iterator[Path]:
    """A 0700 directory for sockets (short path: sun_path is 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="qsp") as folder:
        os.chmod(folder, 0o700)
        yield Path(folder)


@contextmanager
def running_worker(udf_file: Path) -> Iterator[SparkWorker]:
    """A worker on a Unix socket in a private folder, stopped afterwards."""
    with private_folder() as folder:
        worker = SparkWorker(str(folder / "w.sock"), udf_file)
        try:
            yield worker
        finally:
            worker.close()


def error_kind(error: spb.ExecutionError) -> tuple[str, spb.Message]:
    """Return (kind, message) of an ExecutionError."""
    kind = error.WhichOneof("kind")
    assert kind is not None, "an ExecutionError must set exactly one kind"
    return kind, getattr(error, kind)
