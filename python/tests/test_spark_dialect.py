"""``python -m quiver.worker --dialect spark`` against a grpcio client playing Spark's engine.

Every worker is a real process serving Spark's ``UdfWorker`` on a real Unix socket or loopback
TCP port; the client is the stub generated from ``proto/spark``. Each test checks one rule of
docs/spark-protocol.md.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pyarrow as pa
import pytest

from quiver.spark_dialect.endpoint import has_ipv6_loopback
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
        self.process = subprocess.Popen(
            [sys.executable, "-m", "quiver.worker", "--dialect", "spark", "--id", "t"]
            + ["--connection", connection],
            cwd=PYTHON_ROOT,
            stderr=subprocess.PIPE,
            text=True,
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
        """The worker's log (after it exited)."""
        if self.process.poll() is None:
            return "(still running)"
        return self.process.stderr.read() if self.process.stderr else ""

    def close(self) -> None:
        """Stop the worker if it still runs."""
        self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(TIMEOUT)
        if self.process.stderr:
            self.process.stderr.close()


@pytest.fixture(scope="module")
def udf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The UDFs the tests run, in a file the worker loads by path."""
    path = tmp_path_factory.mktemp("spark_udfs") / "spark_udfs.py"
    path.write_text(UDF_SOURCE)
    return path


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A private directory for sockets (short path: sun_path is 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="qsp") as folder:
        os.chmod(folder, 0o700)
        yield Path(folder)


def _start(udf_file: Path, folder: Path) -> SparkWorker:
    return SparkWorker(str(folder / "w.sock"), udf_file)


@pytest.fixture(scope="module")
def shared(udf_file: Path) -> Iterator[SparkWorker]:
    """One worker for the tests that leave it serving."""
    with tempfile.TemporaryDirectory(prefix="qsp") as folder:
        worker = _start(udf_file, Path(folder))
        yield worker
        worker.close()


@pytest.fixture
def worker(udf_file: Path, socket_dir: Path) -> Iterator[SparkWorker]:
    """A worker of the test's own (for tests that end it)."""
    started = _start(udf_file, socket_dir)
    yield started
    started.close()


def error_kind(error: spb.ExecutionError) -> tuple[str, spb.Message]:
    """Return (kind, message) of an ExecutionError."""
    kind = error.WhichOneof("kind")
    assert kind is not None, "an ExecutionError must set exactly one kind"
    return kind, getattr(error, kind)


# ---- the success path ----


def test_success_path_answers_each_batch_in_order_with_the_result_schema(shared: SparkWorker):
    call = shared.call()
    init = call.init(shared.ref("plus_one"), udf={"name": "y"})
    assert not init.HasField("error")
    result_schema = pa.ipc.read_schema(pa.py_buffer(init.data))
    assert result_schema == pa.schema([("y", pa.int64())])
    for values in ([1, 2, 3], [None, 41], [], [-1]):
        call.send_batch(int_batch(*values))
        got = call.recv_batch()
        assert got.schema == result_schema
        assert got.column(0).to_pylist() == [None if v is None else v + 1 for v in values]
    call.finish()
    metrics = call.recv_control("finish").metrics
    assert metrics["rows_in"] == metrics["rows_out"] == "6"
    assert metrics["batches_in"] == metrics["batches_out"] == "4"
    assert call.ended()


def test_finish_metrics_carry_every_documented_key(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("plus_one"))
    data = ipc_stream(int_batch(1, 2))
    call.send_data(data)
    call.recv_batch()
    call.finish()
    metrics = dict(call.recv_control("finish").metrics)
    assert set(metrics) == {
        "rows_in",
        "rows_out",
        "batches_in",
        "batches_out",
        "bytes_in",
        "bytes_out",
        "udf_time_ns",
        "codec_time_ns",
        "peak_rss_bytes",
    }
    assert metrics["bytes_in"] == str(len(data))
    assert int(metrics["bytes_out"]) > 0 and int(metrics["peak_rss_bytes"]) > 0
    assert int(metrics["udf_time_ns"]) > 0
    assert call.ended()


def test_unset_name_is_the_functions_own_and_arguments_are_every_column(shared: SparkWorker):
    schema = pa.schema([("a", pa.int64()), ("b", pa.int64())])
    call = shared.call()
    init = call.init(shared.ref("add"), schema)
    assert pa.ipc.read_schema(pa.py_buffer(init.data)).names == ["add"]
    call.send_batch(pa.record_batch({"a": [1, 2], "b": [10, 20]}, schema=schema))
    assert call.recv_batch().column(0).to_pylist() == [11, 22]
    call.finish()
    call.recv_control("finish")
    assert call.ended()


def test_pandas_eval_type_and_session_timezone_are_taken(shared: SparkWorker):
    schema = pa.schema([("s", pa.string())])
    call = shared.call()
    call.init(shared.ref("shout"), schema, udf={"eval_type": "SCALAR_PANDAS"}, timezone="UTC")
    call.send_batch(pa.record_batch({"s": ["ada", None]}))
    assert call.recv_batch().column(0).to_pylist() == ["ADA", None]
    call.finish()
    call.recv_control("finish")
    assert call.ended()


def test_cloudpickle_payload_and_constructor_args_in_parameters(shared: SparkWorker):
    import cloudpickle

    import quiver

    class Tripled:
        def __init__(self, factor: int = 1) -> None:
            self.factor = factor

        def __call__(self, x: pa.Array) -> pa.Array:
            import pyarrow.compute as pc

            return pc.multiply(x, self.factor)

    payload = cloudpickle.dumps(quiver.udf(returns="int64")(Tripled))
    call = shared.call()
    init = call.init(
        "",
        payload=payload,
        payload_format="python/cloudpickle",
        parameters=b'{"constructor_args": {"factor": 3}, "other": 1}',
    )
    assert not init.HasField("error"), init
    call.send_batch(int_batch(1, 2))
    assert call.recv_batch().column(0).to_pylist() == [3, 6]
    call.finish()
    call.recv_control("finish")
    assert call.ended()


def test_chunked_payload_with_size_and_crc_loads(shared: SparkWorker):
    payload = shared.ref("plus_one").encode()
    call = shared.call()
    udf = spb.UdfPayload(
        payload=payload[:5],
        format="python/ref",
        payload_size=len(payload),
        payload_crc32=zlib.crc32(payload),
    )
    call.send(
        init=spb.Init(
            data_format=common_pb2.ARROW,
            udf=udf,
            is_chunking_payload=True,
            input_schema=schema_bytes(INT_SCHEMA),
        )
    )
    call.send(payload=spb.PayloadChunk(data=payload[5:9]))
    call.send(payload=spb.PayloadChunk(data=b""))  # empty chunks add nothing
    call.send(payload=spb.PayloadChunk(data=payload[9:], last=True))
    assert not call.recv_control("init").HasField("error")
    call.send_batch(int_batch(7))
    assert call.recv_batch().column(0).to_pylist() == [8]
    call.finish()
    call.recv_control("finish")
    assert call.ended()


def test_several_batches_in_one_request_and_a_bare_batch_message(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("plus_one"))
    call.send_data(ipc_stream(int_batch(1), int_batch(2, 3)))
    assert call.recv_batch().column(0).to_pylist() == [2]
    assert call.recv_batch().column(0).to_pylist() == [3, 4]
    call.send_data(int_batch(10).serialize().to_pybytes())  # no schema message
    assert call.recv_batch().column(0).to_pylist() == [11]
    call.finish()
    assert call.recv_control("finish").metrics["batches_out"] == "3"
    assert call.ended()


def test_concurrent_streams_are_served_side_by_side(shared: SparkWorker):
    slow, fast = shared.call(), shared.call()
    slow.init(shared.ref("nap"))
    fast.init(shared.ref("plus_one"))
    started = time.monotonic()
    slow.send_batch(int_batch(1500))
    time.sleep(0.1)
    fast.send_batch(int_batch(1))
    assert fast.recv_batch().column(0).to_pylist() == [2]
    assert time.monotonic() - started < 1.2, "the fast stream waited for the slow one"
    assert slow.recv_batch().column(0).to_pylist() == [1500]
    for call in (slow, fast):
        call.finish()
        call.recv_control("finish")
        assert call.ended()


# ---- errors ----


def test_user_error_has_message_class_and_traceback_then_cancel(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("fails"))
    call.send_batch(int_batch(1))
    call.send_batch(int_batch(13))
    call.send_batch(int_batch(2))  # after the error: not answered
    assert call.recv_batch().column(0).to_pylist() == [1]
    kind, user = error_kind(call.recv_control("error").error)
    assert kind == "user"
    assert user.message == "thirteen is unlucky"
    assert user.error_class == "ValueError"
    assert "spark_udfs.py" in user.traceback and "raise ValueError" in user.traceback
    assert "quiver/worker" not in user.traceback  # quiver's own frames are trimmed
    call.finish()  # Cancel-after-Finish: the error's terminator is CancelResponse
    call.cancel()
    assert call.recv_control("cancel").metrics["batches_in"] == "3"
    assert call.ended()


def test_wrong_result_length_is_a_worker_error(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("wrong_length"))
    call.send_batch(int_batch(1, 2, 3))
    kind, error = error_kind(call.recv_control("error").error)
    assert kind == "worker" and "wrong_length" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_init_error_then_cancel(shared: SparkWorker):
    call = shared.call()
    init = call.init(shared.ref("no_such_function"))
    kind, error = error_kind(init.error)
    assert kind == "worker" and "no_such_function" in error.message
    assert not init.HasField("data")
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_unknown_payload_format_names_the_accepted_ones(shared: SparkWorker):
    call = shared.call()
    kind, error = error_kind(call.init("x", payload_format="java/serialized").error)
    assert (
        kind == "worker" and "python/ref" in error.message and "python/cloudpickle" in error.message
    )
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_version_99_answered_once_after_the_last_chunk(shared: SparkWorker):
    call = shared.call()
    udf = spb.UdfPayload(payload=b"", format="python/ref")
    call.send(
        init=spb.Init(
            protocol_version=99,
            data_format=common_pb2.ARROW,
            udf=udf,
            is_chunking_payload=True,
            input_schema=schema_bytes(INT_SCHEMA),
        )
    )
    call.send(payload=spb.PayloadChunk(data=b"a" * 10))
    with pytest.raises(queue.Empty):  # nothing is answered before the last chunk
        call.recv(timeout=0.3)
    call.send(payload=spb.PayloadChunk(data=b"b", last=True))
    kind, error = error_kind(call.recv_control("init").error)
    assert kind == "protocol" and "99" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


@pytest.mark.parametrize("data_format", [common_pb2.UDF_WORKER_DATA_FORMAT_UNSPECIFIED, 7])
def test_data_format_other_than_arrow_is_a_protocol_error(shared: SparkWorker, data_format: int):
    call = shared.call()
    init = call.init(shared.ref("plus_one"), data_format=data_format)
    kind, error = error_kind(init.error)
    assert kind == "protocol" and "ARROW" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("payload_crc32", 1234, "CRC-32"), ("payload_size", 3, "payload_size")],
)
def test_payload_crc_or_size_mismatch_is_a_protocol_error(
    shared: SparkWorker, field: str, value: int, words: str
):
    call = shared.call()
    init = call.init(shared.ref("plus_one"), udf={field: value})
    kind, error = error_kind(init.error)
    assert kind == "protocol" and words in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_missing_input_schema_is_a_protocol_error(shared: SparkWorker):
    call = shared.call()
    kind, error = error_kind(call.init(shared.ref("plus_one"), schema=None).error)
    assert kind == "protocol" and "input_schema" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_output_schema_disagreeing_with_the_udf_is_a_worker_error(shared: SparkWorker):
    call = shared.call()
    output = schema_bytes(pa.schema([("y", pa.string())]))
    kind, error = error_kind(call.init(shared.ref("plus_one"), output_schema=output).error)
    assert kind == "worker" and "string" in error.message and "int64" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_unknown_eval_type_is_a_worker_error(shared: SparkWorker):
    call = shared.call()
    init = call.init(shared.ref("plus_one"), udf={"eval_type": "GROUPED_MAP"})
    kind, error = error_kind(init.error)
    assert kind == "worker" and "SCALAR_ARROW" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_batch_not_matching_input_schema_is_a_protocol_error(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("plus_one"))
    call.send_batch(pa.record_batch({"x": pa.array(["not", "ints"])}))
    kind, error = error_kind(call.recv_control("error").error)
    assert kind == "protocol" and "input_schema" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_undecodable_data_is_a_protocol_error(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("plus_one"))
    call.send_data(b"\x00garbage")
    kind, _ = error_kind(call.recv_control("error").error)
    assert kind == "protocol"
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_data_before_init_response_is_a_protocol_error_in_init_response(shared: SparkWorker):
    call = shared.call()
    call.send_batch(int_batch(1))
    kind, error = error_kind(call.recv_control("init").error)
    assert kind == "protocol" and "before InitResponse" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_second_init_is_a_protocol_error(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("plus_one"))
    call.send(init=spb.Init(data_format=common_pb2.ARROW))
    kind, error = error_kind(call.recv_control("error").error)
    assert kind == "protocol" and "second Init" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


# ---- cancel and half-close ----


def test_cancel_before_init_is_answered_alone(shared: SparkWorker):
    call = shared.call()
    call.cancel()
    assert call.recv_control("cancel").metrics["batches_in"] == "0"
    assert call.ended()


def test_cancel_while_chunks_arrive_is_answered_without_init_response(shared: SparkWorker):
    call = shared.call()
    udf = spb.UdfPayload(format="python/ref")
    call.send(init=spb.Init(data_format=common_pb2.ARROW, udf=udf, is_chunking_payload=True))
    call.send(payload=spb.PayloadChunk(data=b"abc"))
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_cancel_mid_stream_drops_the_queued_batches(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("nap"))
    call.send_batch(int_batch(400))  # runs while the rest queue up behind it
    for _ in range(20):
        call.send_batch(int_batch(200))
    call.cancel()
    answered = 0
    while True:
        message = call.recv()
        if message.HasField("data"):
            answered += 1
            continue
        assert message.control.WhichOneof("control") == "cancel"
        break
    assert answered < 5, f"{answered} batches ran although a Cancel waited behind them"
    assert message.control.cancel.metrics["batches_in"] == "21"
    assert call.ended()


def test_cancel_after_finish_before_finish_response_gets_cancel_response(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("nap"))
    call.send_batch(int_batch(300))
    call.finish()
    call.cancel()
    call.recv_batch()  # the batch that was running
    call.recv_control("cancel")
    assert call.ended()


def test_half_close_without_finish_is_cancel_with_a_protocol_error(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("plus_one"))
    call.send_batch(int_batch(1))
    call.recv_batch()
    call.half_close()
    cancel = call.recv_control("cancel")
    kind, error = error_kind(cancel.error)
    assert kind == "protocol" and "without Finish or Cancel" in error.message
    assert call.ended()


# ---- Manage ----


def test_heartbeat_is_answered_while_a_udf_sleeps(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("nap"))
    call.send_batch(int_batch(1500))
    time.sleep(0.2)
    started = time.monotonic()
    metrics = shared.heartbeat(timeout=1.0)
    assert time.monotonic() - started < 0.5
    assert metrics["sessions_active"] == "1"
    assert metrics["pid"] == str(shared.process.pid)
    assert call.recv_batch().column(0).to_pylist() == [1500]
    call.finish()
    call.recv_control("finish")
    assert call.ended()


def test_heartbeat_totals_grow_with_each_stream(shared: SparkWorker):
    before = shared.heartbeat()
    call = shared.call()
    call.init(shared.ref("plus_one"))
    call.send_batch(int_batch(1, 2, 3))
    call.recv_batch()
    call.finish()
    call.recv_control("finish")
    assert call.ended()
    after = shared.heartbeat()
    assert int(after["rows_in"]) - int(before["rows_in"]) == 3
    assert int(after["batches_out"]) - int(before["batches_out"]) == 1
    assert after["sessions_active"] == "0"


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


def test_unix_socket_is_owner_only(shared: SparkWorker):
    info = os.stat(shared.connection)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600, oct(stat.S_IMODE(info.st_mode))


def test_bare_port_serves_on_both_loopbacks(udf_file: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    worker = SparkWorker(str(port), udf_file, target=f"127.0.0.1:{port}")
    try:
        targets = [f"127.0.0.1:{port}"] + ([f"[::1]:{port}"] if has_ipv6_loopback() else [])
        for target in targets:
            with grpc.insecure_channel(target) as channel:
                call = SparkCall(udf_service_pb2_grpc.UdfWorkerStub(channel))
                call.init(worker.ref("plus_one"))
                call.send_batch(int_batch(5))
                assert call.recv_batch().column(0).to_pylist() == [6]
                call.finish()
                call.recv_control("finish")
                assert call.ended()
        assert worker.shutdown(cancel_sessions=False).sessions_settled
        assert worker.process.wait(TIMEOUT) == 0
    finally:
        worker.close()


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


def test_socket_path_in_use_exits_one(shared: SparkWorker, socket_dir: Path):
    taken = socket_dir / "taken.sock"
    with socket.socket(socket.AF_UNIX) as holder:
        holder.bind(str(taken))
        done = _run_worker("--connection", str(taken))
    assert done.returncode == 1
    assert "taken.sock" in done.stderr
