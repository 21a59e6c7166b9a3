"""The Python worker over the shm transport, driven by a small engine written here.

The engine side is written from docs/protocol.md section 10: the input arena, a sealed memfd handed
over with SCM_RIGHTS, takes the batches; each result comes in a memfd of its own, which this engine
seals against writing (proving the worker keeps no writable mapping of it) before reading it. The
worker is a real ``python -m quiver.worker`` process.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import socket
import subprocess

import pyarrow as pa
import pytest
from engine_harness import (
    PYTHON_ROOT,
    TESTS_DIR,
    TIMEOUT,
    EngineHarness,
    Received,
    batches_xy,
    ipc_bytes,
    ref_udf,
)

from quiver._proto import pb
from quiver.protocol.framing import FrameDecoder, encode_control_frame
from quiver.transport.shm import INLINE_BELOW, _receive_with_descriptors

F_SEAL_FUTURE_WRITE = 0x0010
RESULT_SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
IDENTITY = ref_udf("same", "quiver.conformance_udfs:identity", [0], pa.int64())
# Rows of batches_xy whose identity result (8 bytes a row) is past the inline threshold.
SHARED_ROWS = INLINE_BELOW // 8 + 1000


def arena(size: int, announced: int | None = None) -> tuple[int, mmap.mmap]:
    """Create the input arena: a memfd mapped read-write here, sealed against other writers."""
    fd = os.memfd_create("in", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | F_SEAL_FUTURE_WRITE
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd, mapping


class ShmEngine(EngineHarness):
    """EngineHarness over shm: batches go through the input arena, results come in memfds."""

    def __init__(self, input_bytes: int = 1 << 20, announced_bytes: int | None = None) -> None:
        super().__init__()
        self.size = input_bytes
        self.announced = announced_bytes or input_bytes
        self.shared_results = 0
        self.next_input = 0

    def start(self, extra_args: tuple[str, ...] = ()) -> pb.Hello:
        """Start the worker on shm:PATH, check its Hello, hand over the input arena."""
        env = dict(os.environ, QUIVER_WORKER_SECRET=self.secret)
        env["PYTHONPATH"] = os.pathsep.join([str(PYTHON_ROOT), str(TESTS_DIR)])
        command = [*self.worker_command(), "--id", self.worker_id]
        command += ["--connection", f"shm:{self.socket_path}", *extra_args]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        self.sock, _ = self.listener.accept()
        self.sock.settimeout(TIMEOUT)
        hello = self.recv()
        assert hello.kind == "hello"
        in_fd, self.input = arena(self.size)
        setup = pb.ShmSetup(input_bytes=self.announced, output_bytes=0)
        frame = b"".join(
            bytes(part)
            for part in encode_control_frame(pb.EngineMessage(shm_setup=setup).SerializeToString())
        )
        socket.send_fds(self.sock, [frame], [in_fd])
        os.close(in_fd)
        if self.announced <= self.size:
            self.expect("shm_ready")
        return hello.message.hello

    def send_batch(self, sequence: int, batch: pa.RecordBatch) -> None:
        """Write the batch into the input arena (one region per batch in flight) and name it."""
        body = ipc_bytes(batch)
        offset = self.next_input
        self.next_input = (offset + body.size + 63) // 64 * 64
        if self.next_input > self.size:
            offset, self.next_input = 0, (body.size + 63) // 64 * 64
        self.input[offset : offset + body.size] = body.to_pybytes()
        self.send_region(sequence, offset, body.size)

    def send_region(self, sequence: int, offset: int, length: int) -> None:
        """Send ShmData naming any region, true or not."""
        region = pb.ShmRegion(offset=offset, length=length)
        self.send(shm_data=pb.ShmData(sequence=sequence, region=region))

    def recv(self) -> Received:
        """Receive the next frame; a result in shared memory is read from its sealed memfd."""
        frame, fds = _receive_with_descriptors(self.sock, FrameDecoder())
        assert frame is not None, f"worker closed the connection; its log:\n{self.log()}"
        if frame.is_control:
            message = pb.WorkerMessage()
            message.ParseFromString(frame.metadata)
            if message.WhichOneof("kind") == "shm_data":
                assert len(fds) == 1, fds
                region = message.shm_data.region
                body = self.take_result(fds[0], region.offset, region.length)
                batch = pa.ipc.open_stream(pa.py_buffer(body)).read_next_batch()
                self.shared_results += 1
                return Received(sequence=message.shm_data.sequence, batch=batch)
            assert fds == [], f"descriptors with {message.WhichOneof('kind')}"
            return Received(message=message)
        assert fds == [], "descriptors with a data frame"
        batch = pa.ipc.open_stream(frame.body).read_next_batch()  # inline, as over uds
        return Received(sequence=frame.sequence, batch=batch)

    @staticmethod
    def take_result(fd: int, offset: int, length: int) -> bytes:
        """Seal a result memfd (the kernel refuses while any writable mapping is left) and read
        the region."""
        try:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, RESULT_SEALS)
            assert 0 < length and offset + length <= os.fstat(fd).st_size
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)


@pytest.fixture
def engine():
    harness = ShmEngine()
    harness.start()
    yield harness
    harness.close()


def test_batches_and_results_travel_through_shared_memory(engine):
    batches = batches_xy(6, rows=SHARED_ROWS)
    results, metrics = engine.run([IDENTITY], batches)
    assert [r.column(0) for r in results] == [b.column(0) for b in batches]
    assert engine.shared_results == 6  # each in a memfd this engine could seal
    assert metrics.batches == 6


def test_small_results_go_inline(engine):
    batches = batches_xy(3, rows=100)
    results, _ = engine.run([IDENTITY], batches)
    assert [r.column(0) for r in results] == [b.column(0) for b in batches]
    assert engine.shared_results == 0


def test_a_region_outside_the_input_arena_is_a_protocol_error_and_the_worker_serves_on(engine):
    engine.start_execution([IDENTITY], batches_xy(1)[0].schema)
    engine.send_region(0, (1 << 20) - 64, 4096)
    error = engine.expect("error").message.error
    assert error.WhichOneof("kind") == "protocol_error"
    assert "outside the input arena" in error.protocol_error.message
    engine.send(cancel=pb.Cancel())
    engine.expect("cancel_response")
    results, _ = engine.run([IDENTITY], batches_xy(2))
    assert len(results) == 2


def test_an_arena_smaller_than_announced_is_a_set_up_failure_it_names():
    engine = ShmEngine(input_bytes=4096, announced_bytes=1 << 20)
    try:
        engine.start()
        assert engine.wait() == 1
        log = engine.log()
        assert "cannot set up shared memory with the engine" in log, log
        assert "its memfd has 4096" in log, log
    finally:
        engine.close()
