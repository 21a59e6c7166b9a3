"""A small engine written in Python that drives a real ``python -m quiver.worker`` process.

It listens on a real Unix socket, starts the worker the way the engine does, checks its Hello and
speaks frames with it, so the worker tests exercise the same bytes the C++ engine sends.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from quiver._proto import pb
from quiver.protocol.framing import encode_control_frame, encode_data_frame
from quiver.transport.uds import read_frame, send_frame

PYTHON_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = Path(__file__).resolve().parent
UDF_DIR = TESTS_DIR / "udfs"
TIMEOUT = 20.0


def ref_udf(
    name: str,
    ref: str,
    offsets: list[int],
    return_type: pa.DataType | None = None,
    eval_type: int = pb.EVAL_TYPE_UNSPECIFIED,
) -> pb.UdfDefinition:
    """Describe a UDF by reference; ``ref`` is "FILE.py:FUNC" relative to tests/udfs."""
    target = ref if not ref.split(":")[0].endswith(".py") else str(UDF_DIR / ref)
    return pb.UdfDefinition(
        name=name,
        payload_format="python/ref",
        payload=target.encode(),
        eval_type=eval_type,
        argument_offsets=offsets,
        return_type=pa.schema([pa.field(name, return_type)]).serialize().to_pybytes()
        if return_type is not None
        else b"",
    )


def batches_xy(count: int = 4, rows: int = 5) -> list[pa.RecordBatch]:
    """Batches with an int column x (with nulls), an int column y and a string column s."""
    result = []
    for n in range(count):
        x = [None if (i + n) % 4 == 0 else i + n * rows for i in range(rows)]
        result.append(
            pa.record_batch(
                {
                    "x": pa.array(x, type=pa.int64()),
                    "y": pa.array([i * 10 for i in range(rows)], type=pa.int64()),
                    "s": pa.array([None if i == 1 else f"v{i}" for i in range(rows)]),
                }
            )
        )
    return result


def ipc_bytes(batch: pa.RecordBatch) -> pa.Buffer:
    """Encode one batch as a self-contained IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue()


@dataclass
class Received:
    """One frame from the worker: a control message or a result batch."""

    message: pb.WorkerMessage | None = None
    sequence: int | None = None
    batch: pa.RecordBatch | None = None

    @property
    def kind(self) -> str:
        """Name what arrived: a WorkerMessage field name, or "data"."""
        return "data" if self.batch is not None else str(self.message.WhichOneof("kind"))


class ExpectingReceiver:
    """Adds ``expect`` to a test engine whose ``recv`` returns the worker's next message."""

    def recv(self) -> Received:
        """Receive the worker's next message (a control message or a batch)."""
        raise NotImplementedError

    def expect(self, kind: str) -> Received:
        """Receive the next message and check its kind."""
        received = self.recv()
        detail = received.message if received.message is not None else ""
        assert received.kind == kind, f"expected {kind}, got {received.kind} {detail}"
        return received


class EngineHarness(ExpectingReceiver):
    """Start a worker, accept its connection and exchange frames with it."""

    def __init__(self, worker_id: str = "w1") -> None:
        self.worker_id = worker_id
        self.secret = secrets.token_hex(32)
        # A short private directory: Unix socket paths are limited to about 100 bytes.
        self.dir = tempfile.mkdtemp(prefix="qvr-")
        os.chmod(self.dir, 0o700)
        self.socket_path = os.path.join(self.dir, "engine.sock")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.socket_path)
        self.listener.listen(1)
        self.listener.settimeout(TIMEOUT)
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None

    # ---- process ----

    def start(self, extra_args: tuple[str, ...] = ()) -> pb.Hello:
        """Start the worker, accept it and return its Hello."""
        env = dict(os.environ)
        env["QUIVER_WORKER_SECRET"] = self.secret
        env["PYTHONPATH"] = os.pathsep.join([str(PYTHON_ROOT), str(TESTS_DIR)])
        command = [*self.worker_command(), "--id", self.worker_id]
        command += ["--connection", f"unix:{self.socket_path}", *extra_args]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        self.sock, _ = self.listener.accept()
        self.sock.settimeout(TIMEOUT)
        first = self.recv()
        assert first.kind == "hello", f"first message is {first.kind}, not hello"
        return first.message.hello

    def worker_command(self) -> list[str]:
        """Return the program that starts the worker (the engine appends --id and --connection)."""
        return [sys.executable, "-m", "quiver.worker"]

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Wait for the worker to exit; return its exit status."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def terminate(self) -> None:
        """Send SIGTERM to the worker."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def log(self) -> str:
        """Return what the worker wrote to stderr."""
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stdout(self) -> bytes:
        """Return what the worker wrote to stdout (nothing, if it redirects correctly)."""
        with open(self.stdout_path, "rb") as f:
            return f.read()

    def close(self) -> None:
        """Close the connection, stop the worker if it still runs and remove the directory."""
        if self.sock is not None:
            self.sock.close()
        self.listener.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- frames ----

    def send(self, **kind: object) -> None:
        """Send one EngineMessage, e.g. ``send(finish=pb.Finish())``."""
        message = pb.EngineMessage(**kind)
        send_frame(self.sock, encode_control_frame(message.SerializeToString()))

    def send_raw(self, data: bytes) -> None:
        """Send raw bytes (for broken-frame tests)."""
        self.sock.sendall(data)

    def send_batch(self, sequence: int, batch: pa.RecordBatch) -> None:
        """Send one batch as a data frame."""
        send_frame(self.sock, encode_data_frame(sequence, ipc_bytes(batch)))

    def recv(self) -> Received:
        """Receive the worker's next frame (fails on EOF)."""
        frame = read_frame(self.sock)
        assert frame is not None, f"worker closed the connection; its log:\n{self.log()}"
        if frame.is_control:
            message = pb.WorkerMessage()
            message.ParseFromString(frame.metadata)
            return Received(message=message)
        batch = _single_batch(frame.body)
        return Received(sequence=frame.sequence, batch=batch)

    def at_eof(self) -> bool:
        """Tell whether the worker closed its end of the connection."""
        return read_frame(self.sock) is None

    # ---- whole exchanges ----

    def init(
        self,
        udfs: list[pb.UdfDefinition],
        input_schema: pa.Schema | None = None,
        **fields: object,
    ) -> Received:
        """Send Init (protocol 1, Arrow IPC) and return the worker's answer."""
        init = pb.Init(
            protocol_version=fields.pop("protocol_version", 1),
            data_format=fields.pop("data_format", pb.ARROW_IPC_STREAM),
            udfs=udfs,
            input_schema=input_schema.serialize().to_pybytes() if input_schema else b"",
            **fields,
        )
        self.send(init=init)
        return self.recv()

    def start_execution(
        self, udfs: list[pb.UdfDefinition], input_schema: pa.Schema | None = None
    ) -> pa.Schema:
        """Send Init and return the result schema of the InitResponse."""
        answer = self.init(udfs, input_schema)
        assert answer.kind == "init_response", f"Init answered with {answer.message}"
        return pa.ipc.read_schema(pa.py_buffer(answer.message.init_response.result_schema))

    def run(
        self, udfs: list[pb.UdfDefinition], batches: list[pa.RecordBatch], window: int = 3
    ) -> tuple[list[pa.RecordBatch], pb.Metrics]:
        """Run one whole execution, keeping up to ``window`` batches in flight."""
        schema = self.start_execution(udfs, batches[0].schema if batches else None)
        results: list[pa.RecordBatch] = []
        for sequence, batch in enumerate(batches):
            self.send_batch(sequence, batch)
            if sequence + 1 - len(results) >= window:
                results.append(self._result(len(results), schema))
        while len(results) < len(batches):
            results.append(self._result(len(results), schema))
        self.send(finish=pb.Finish())
        return results, self.expect("finish_response").message.finish_response.metrics

    def _result(self, sequence: int, schema: pa.Schema) -> pa.RecordBatch:
        """Receive the result of batch ``sequence`` and check it against the result schema."""
        received = self.expect("data")
        assert received.sequence == sequence
        assert received.batch.schema.equals(schema)
        return received.batch


def _single_batch(body: pa.Buffer) -> pa.RecordBatch:
    """Read the one batch of a result body."""
    batches = list(pa.ipc.open_stream(body))
    assert len(batches) == 1, f"a result body holds {len(batches)} batches"
    return batches[0]
