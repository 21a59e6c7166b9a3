"""The Python worker over the shm transport, driven by a small engine written here.

The engine side is written from docs/protocol.md section 10: two sealed memfds handed over with
SCM_RIGHTS, batches written into the input arena, results read from the output arena and
released. The worker is a real ``python -m quiver.worker`` process.
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
from quiver.protocol.framing import encode_control_frame
from quiver.transport.shm import OutputArena
from quiver.transport.uds import read_frame

F_SEAL_FUTURE_WRITE = 0x0010
IDENTITY = ref_udf("same", "quiver.conformance_udfs:identity", [0], pa.int64())


def arena(name: str, size: int, seal_writes: bool) -> tuple[int, mmap.mmap]:
    """Create a sealed memfd of ``size`` bytes, mapped read-write here."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals | (F_SEAL_FUTURE_WRITE if seal_writes else 0))
    return fd, mapping


class ShmEngine(EngineHarness):
    """EngineHarness over shm: batches go through the arenas; results are released on demand."""

    def __init__(self, input_bytes: int = 1 << 20, output_bytes: int = 1 << 20) -> None:
        super().__init__()
        self.sizes = (input_bytes, output_bytes)
        self.shared_results = 0
        self.held: list[pb.ShmRegion] = []
        self.next_input = 0
        self.seal_output_writes = False  # True: an output arena the worker cannot map writable

    def start(self, extra_args: tuple[str, ...] = ()) -> pb.Hello:
        """Start the worker on shm:PATH, check its Hello, hand over the arenas."""
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
        in_fd, self.input = arena("in", self.sizes[0], seal_writes=True)
        out_fd, self.output = arena("out", self.sizes[1], seal_writes=self.seal_output_writes)
        setup = pb.ShmSetup(input_bytes=self.sizes[0], output_bytes=self.sizes[1])
        frame = b"".join(
            bytes(part)
            for part in encode_control_frame(pb.EngineMessage(shm_setup=setup).SerializeToString())
        )
        socket.send_fds(self.sock, [frame], [in_fd, out_fd])
        os.close(in_fd)
        os.close(out_fd)
        if not self.seal_output_writes:
            self.expect("shm_ready")
        return hello.message.hello

    def send_batch(self, sequence: int, batch: pa.RecordBatch) -> None:
        """Write the batch into the input arena (one region per batch in flight) and name it."""
        body = ipc_bytes(batch)
        offset = self.next_input
        self.next_input = (offset + body.size + 63) // 64 * 64
        if self.next_input > self.sizes[0]:
            offset, self.next_input = 0, (body.size + 63) // 64 * 64
        self.input[offset : offset + body.size] = body.to_pybytes()
        self.send_region(sequence, offset, body.size)

    def send_region(self, sequence: int, offset: int, length: int) -> None:
        """Send ShmData naming any region, true or not."""
        region = pb.ShmRegion(offset=offset, length=length)
        self.send(shm_data=pb.ShmData(sequence=sequence, region=region))

    def recv(self) -> Received:
        """Receive the next frame; a result in shared memory is read from the output arena."""
        frame = read_frame(self.sock)
        assert frame is not None, f"worker closed the connection; its log:\n{self.log()}"
        if frame.is_control:
            message = pb.WorkerMessage()
            message.ParseFromString(frame.metadata)
            if message.WhichOneof("kind") == "shm_data":
                region = message.shm_data.region
                assert region.offset % 64 == 0
                assert region.offset + region.length <= self.sizes[1]
                body = self.output[region.offset : region.offset + region.length]
                batch = pa.ipc.open_stream(pa.py_buffer(bytes(body))).read_next_batch()
                self.shared_results += 1
                self.held.append(pb.ShmRegion(offset=region.offset, length=region.length))
                return Received(sequence=message.shm_data.sequence, batch=batch)
            return Received(message=message)
        batch = pa.ipc.open_stream(frame.body).read_next_batch()  # inline, as over uds
        return Received(sequence=frame.sequence, batch=batch)

    def release_all(self) -> None:
        """Give every result region back to the worker."""
        self.send(shm_release=pb.ShmRelease(regions=self.held))
        self.held = []


@pytest.fixture
def engine():
    harness = ShmEngine()
    harness.start()
    yield harness
    harness.close()


def test_batches_and_results_travel_through_shared_memory(engine):
    batches = batches_xy(6, rows=12000)  # about 100 KiB of result stream each
    results, metrics = engine.run([IDENTITY], batches)
    assert [r.column(0) for r in results] == [b.column(0) for b in batches]
    assert engine.shared_results == 6
    assert metrics.batches == 6


def test_small_results_go_inline(engine):
    batches = batches_xy(3)  # under 64 KiB: the socket is faster for them
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


def test_results_go_inline_while_the_engine_holds_the_arena_and_back_after_release():
    engine = ShmEngine(output_bytes=400 << 10)
    try:
        engine.start()
        batch = batches_xy(1, rows=12000)[0]  # about 100 KiB of result stream
        schema = engine.start_execution([IDENTITY], batch.schema)
        for sequence in range(6):
            engine.send_batch(sequence, batch)
            assert engine._result(sequence, schema).num_rows == 12000
        assert 1 <= engine.shared_results < 6  # the rest came inline: the arena was full
        engine.release_all()
        before = engine.shared_results
        engine.send_batch(6, batch)
        engine._result(6, schema)
        assert engine.shared_results == before + 1
        engine.send(finish=pb.Finish())
        engine.expect("finish_response")
    finally:
        engine.close()


def test_an_output_arena_the_worker_cannot_write_is_a_set_up_failure_it_names():
    engine = ShmEngine()
    engine.seal_output_writes = True
    try:
        engine.start()
        assert engine.wait() == 1
        log = engine.log()
        assert "cannot set up shared memory with the engine: PermissionError" in log, log
    finally:
        engine.close()


def test_the_output_arena_allocator_reuses_released_regions():
    arena_ = OutputArena(1024)
    first, second = arena_.allocate(100), arena_.allocate(64)
    assert (first, second) == (0, 128)
    assert arena_.allocate(1024) is None
    assert arena_.release(first) and arena_.release(second)
    assert not arena_.release(first)
    assert arena_.allocate(1024) == 0  # freed neighbours merged back into one range
    assert arena_.used_bytes == 1024


def test_results_of_mebibytes_travel_through_the_arena_whole():
    engine = ShmEngine(input_bytes=16 << 20, output_bytes=16 << 20)
    try:
        engine.start()
        # About 3.4 MB each: over the size the encoder serializes into one buffer.
        batches = [
            pa.record_batch({"s": pa.array([f"{i:08d}" * 35 for i in range(n, n + 12000)])})
            for n in (0, 12000, 24000)
        ]
        identity = ref_udf("same", "quiver.conformance_udfs:identity", [0], pa.string())
        results, metrics = engine.run([identity], batches)
        assert [r.column(0) for r in results] == [b.column(0) for b in batches]
        assert engine.shared_results == 3
        assert metrics.batches == 3
    finally:
        engine.close()
