"""Mutated engine frames sent to a real ``python -m quiver.worker`` over a real socket.

Each run sends one whole execution (Init, maybe a PayloadChunk, Heartbeat, two Data frames,
Finish or Cancel) with one frame mutated: bit flips, overwritten bytes, truncations, extensions,
and changed lengths, either inside the frame's content (the header stays right, so the protocol
and Arrow decoders see the damage) or in the frame as sent (the header too, so the framing does).
Every run must end in answers the protocol allows (an Error for the damage, or results when the
damage left valid data) or a clean exit with a message in the worker's log: never a signal, an
uncaught exception, an answer that does not decode, or a hang.

The seeds are fixed; ``QUIVER_FUZZ_RUNS`` and ``QUIVER_FUZZ_FRAME_RUNS`` run more of them (the
defaults keep CI under a minute).
"""

from __future__ import annotations

import os
import random
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pytest
from engine_harness import EngineHarness, ipc_bytes, ref_udf

from quiver._proto import pb
from quiver.protocol.framing import HEADER_SIZE, FramingError, encode_control_frame
from quiver.protocol.framing import encode_data_frame as data_frame_buffers
from quiver.transport.uds import read_frame

CONTENT_RUNS = int(os.environ.get("QUIVER_FUZZ_RUNS", "600"))
FRAME_RUNS = int(os.environ.get("QUIVER_FUZZ_FRAME_RUNS", "8"))
# How long the worker may stay silent before the engine side gives up and closes its end (long
# when the framing stays intact: then silence is only a slow machine), and how long it may take
# to exit after that: past it, the run hangs.
QUIET_SECONDS = {"damage_content": 20.0, "damage_frame": 3.0}
EXIT_SECONDS = 15.0
# Every this many runs, an unmutated execution checks that the worker still answers correctly.
CHECK_EVERY = 100
TERMINAL = {"finish_response", "cancel_response"}
# Edge values written over lengths, counts and offsets.
EDGES = [0, 1, 7, 8, 63, 64, 255, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 2**63 - 1, 2**64 - 1]


def input_batch(rows: int, salt: int) -> pa.RecordBatch:
    """A batch with the column kinds whose buffers are worth damaging."""
    words = [None if (i + salt) % 5 == 0 else f"w{i * salt}é" for i in range(rows)]
    return pa.record_batch(
        {
            "x": pa.array([None if i % 4 == 1 else i * salt for i in range(rows)], pa.int64()),
            "s": pa.array(words, pa.string()),
            "d": pa.array([words[i % 3] for i in range(rows)], pa.string()).dictionary_encode(),
            "l": pa.array([list(range(i % 4)) for i in range(rows)], pa.list_(pa.int64())),
        }
    )


UDFS = [
    ref_udf("same", "arith.py:identity", [0]),
    ref_udf("loud", "arith.py:shout", [1]),
    ref_udf("text", "series.py:describe", [0, 1]),
    ref_udf("plain", "arith.py:plain_string", [2]),
]


def control(**kind: object) -> bytes:
    """One control frame, as bytes."""
    message = pb.EngineMessage(**kind).SerializeToString()
    return b"".join(bytes(part) for part in encode_control_frame(message))


CANCEL = control(cancel=pb.Cancel(reason="fuzz: the execution is still open"))


def data(sequence: int, body: bytes) -> bytes:
    """One data frame, as bytes."""
    return b"".join(bytes(memoryview(part)) for part in data_frame_buffers(sequence, body))


def execution(rng: random.Random) -> list[bytes]:
    """The frames of one valid execution (payload split into a chunk half of the time)."""
    batches = [input_batch(rng.randint(1, 30), salt) for salt in (3, 7)]
    udfs = [pb.UdfDefinition.FromString(udf.SerializeToString()) for udf in UDFS]
    chunked = rng.random() < 0.5
    chunk = b""
    if chunked:
        chunk, udfs[0].payload = udfs[0].payload[10:], udfs[0].payload[:10]
    init = pb.Init(
        protocol_version=1,
        data_format=pb.ARROW_IPC_STREAM,
        udfs=udfs,
        input_schema=batches[0].schema.serialize().to_pybytes(),
        payload_chunk_count=1 if chunked else 0,
    )
    frames = [control(init=init)]
    if chunked:
        frames.append(control(payload_chunk=pb.PayloadChunk(udf_index=0, data=chunk)))
    frames.append(control(heartbeat=pb.Heartbeat(nonce=rng.getrandbits(62))))
    frames += [data(seq, ipc_bytes(batch).to_pybytes()) for seq, batch in enumerate(batches)]
    end = control(finish=pb.Finish()) if rng.random() < 0.7 else control(cancel=pb.Cancel())
    frames.append(end)
    return frames


# ---- mutations ----


def damage(content: bytearray, rng: random.Random) -> str:
    """Damage ``content`` in place in one of several ways; return the way."""
    way = rng.choice(["flip", "flip", "byte", "truncate", "extend", "length"])
    if way == "flip" and content:
        for _ in range(rng.randint(1, 8)):
            bit = rng.randrange(len(content) * 8)
            content[bit // 8] ^= 1 << (bit % 8)
    elif way == "byte" and content:
        content[rng.randrange(len(content))] = rng.choice([0, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    elif way == "truncate" and content:
        del content[rng.randrange(len(content)) :]
    elif way == "extend":
        at = rng.randint(0, len(content))
        content[at:at] = rng.randbytes(rng.choice([1, 3, 8, 64, 1000]))
    else:  # overwrite a length, count or offset (Arrow's are 4 or 8 bytes, little-endian)
        size = rng.choice([4, 8])
        if len(content) >= size:
            at = rng.randrange(0, len(content) - size + 1)
            if rng.random() < 0.7:
                at -= at % size
            value = rng.choice(EDGES + [rng.getrandbits(size * 8)]) % (1 << (size * 8))
            content[at : at + size] = value.to_bytes(size, "little")
        way = "length"
    return way


def damage_content(frame: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Damage what a frame carries and frame it again: the header stays right."""
    content = bytearray(frame[HEADER_SIZE:])
    way = damage(content, rng)
    if frame[4] == 2:  # a data frame keeps its sequence
        return data(struct.unpack_from("<Q", frame, 8)[0], bytes(content)), way
    return b"".join(bytes(p) for p in encode_control_frame(bytes(content))), way


def damage_frame(frame: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Damage the frame as sent, its header most of the time."""
    raw = bytearray(frame)
    if rng.random() < 0.6:
        header = bytearray(raw[:HEADER_SIZE])
        way = damage(header, rng)
        raw[:HEADER_SIZE] = header[:HEADER_SIZE].ljust(HEADER_SIZE, b"\0")
        return bytes(raw), f"header {way}"
    return bytes(raw), damage(raw, rng)


def mutate(frames: list[bytes], rng: random.Random, how, count: int) -> tuple[list[bytes], str]:
    """Damage ``count`` frames with ``how``; return them and a label saying which and how."""
    frames = list(frames)
    done = []
    for index in sorted(rng.sample(range(len(frames)), count)):
        kind = "data" if frames[index][4] == 2 else "control"
        frames[index], way = how(frames[index], rng)
        done.append(f"frame {index} ({kind}): {way}")
    return frames, ", ".join(done)


# ---- one worker, many runs ----


@dataclass
class Outcome:
    """What one run ended with."""

    replies: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exit_status: int | None = None


class Fuzzer:
    """Keep a worker process, start a new one when the last one exited."""

    def __init__(self, quiet_seconds: float) -> None:
        self.quiet_seconds = quiet_seconds
        self.engine: EngineHarness | None = None
        self.starts = 0
        self.nonce = 1 << 63  # sync heartbeats; the executions' own nonces stay below
        self.last_nonce = 0

    def worker(self) -> EngineHarness:
        if self.engine is None:
            self.engine = EngineHarness(worker_id=f"fuzz-{self.starts}")
            self.engine.start()
            self.starts += 1
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def run(self, frames: list[bytes], label: str) -> Outcome:
        """Send the frames, read the answers to the end, check how the run ended."""
        engine = self.worker()
        outcome = Outcome()
        # A Heartbeat behind the frames tells when the worker has handled them all; when the
        # execution is still open then (its Finish was damaged), a Cancel ends it.
        if self._send_and_sync(engine, b"".join(frames), outcome):
            if TERMINAL & set(outcome.replies) or self._send_and_sync(engine, CANCEL, outcome):
                return outcome
        # The worker is silent (a length promised more bytes than came): close our end as an
        # engine that gives up would; the worker must exit cleanly, and soon.
        try:
            engine.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._read_to_eof(engine, outcome, label)
        self._check_exit(engine, outcome, label)
        return outcome

    def _send_and_sync(self, engine: EngineHarness, raw: bytes, outcome: Outcome) -> bool:
        """Send ``raw`` and a Heartbeat; read answers up to its echo (False: none came)."""
        self.nonce += 1
        try:
            engine.sock.sendall(raw + control(heartbeat=pb.Heartbeat(nonce=self.nonce)))
        except OSError:
            return False  # the worker closed already; the exit check says why
        engine.sock.settimeout(self.quiet_seconds)
        while True:
            try:
                frame = read_frame(engine.sock)
            except (TimeoutError, OSError, FramingError):
                return False  # silent, or the connection broke (the exit check says why)
            if frame is None:
                return False
            if self._record(frame, outcome) == "heartbeat" and self.last_nonce == self.nonce:
                outcome.replies.pop()
                return True

    def _record(self, frame, outcome: Outcome) -> str:
        """Note one answer, and the nonce of a Heartbeat."""
        return record(frame, outcome, self)

    def _read_to_eof(self, engine: EngineHarness, outcome: Outcome, label: str) -> None:
        engine.sock.settimeout(EXIT_SECONDS)
        deadline = time.monotonic() + EXIT_SECONDS
        while time.monotonic() < deadline:
            try:
                frame = read_frame(engine.sock)
            except TimeoutError:
                break
            except (FramingError, OSError):
                return  # a worker that exits may cut its last frame short: EOF all the same
            if frame is None:
                return
            record(frame, outcome)
        pytest.fail(f"{label}: the worker did not close the connection\n{engine.log()[-3000:]}")

    def _check_exit(self, engine: EngineHarness, outcome: Outcome, label: str) -> None:
        try:
            status = engine.wait(timeout=EXIT_SECONDS)
        except Exception:
            pytest.fail(f"{label}: the worker hangs after EOF\n{engine.log()[-3000:]}")
        outcome.exit_status = status
        log = engine.log()
        self.close()
        assert status >= 0, f"{label}: the worker died of signal {-status}\n{log[-3000:]}"
        assert status in (0, 1), f"{label}: exit status {status}\n{log[-3000:]}"
        expected = "connection to the engine lost" if status == 1 else "exiting"
        assert expected in log, f"{label}: exit {status} without saying why\n{log[-3000:]}"
        assert_clean_log(log, label)

    def check_worker_log(self, label: str) -> None:
        if self.engine is not None:
            assert_clean_log(self.engine.log(), label)


def record(frame, outcome: Outcome, fuzzer: Fuzzer | None = None) -> str:
    """Check one answer of the worker and note its kind."""
    if not frame.is_control:
        batches = list(pa.ipc.open_stream(frame.body))
        assert len(batches) == 1
        batches[0].validate(full=True)
        outcome.replies.append("data")
        return "data"
    message = pb.WorkerMessage.FromString(frame.metadata)
    kind = message.WhichOneof("kind")
    outcome.replies.append(kind)
    if kind == "error":
        error = message.error
        which = error.WhichOneof("kind")
        outcome.errors.append(which)
        if os.environ.get("QUIVER_FUZZ_VERBOSE"):
            print(which, getattr(error, which).message[:150].replace("\n", " "))
    if kind == "heartbeat" and fuzzer is not None:
        fuzzer.last_nonce = message.heartbeat.nonce
    return kind


def assert_clean_log(log: str, label: str) -> None:
    """No crash report, no failure the worker did not expect."""
    for sign in ("Fatal Python error", "unexpected failure handling", "Segmentation fault"):
        assert sign not in log, f"{label}: {sign!r} in the worker log\n{log[-4000:]}"


def check_still_correct(fuzzer: Fuzzer, rng: random.Random) -> None:
    """Run an unmutated execution and check every answer."""
    outcome = fuzzer.run(execution(rng), "unmutated")
    assert outcome.exit_status is None and outcome.errors == [], outcome
    if outcome.replies[-1] == "finish_response":
        assert outcome.replies == ["init_response", "heartbeat", "data", "data", "finish_response"]
    else:  # a Cancel may drop batches not answered yet
        assert outcome.replies[:2] == ["init_response", "heartbeat"], outcome
        assert outcome.replies[-1] == "cancel_response", outcome


def fuzz(seeds: range, how, per_run: int) -> Counter[str]:
    """Run one mutated execution per seed; return how the runs ended."""
    fuzzer = Fuzzer(QUIET_SECONDS[how.__name__])
    outcomes: Counter[str] = Counter()
    started = time.monotonic()
    runs = 0
    try:
        for seed in seeds:
            runs += 1
            rng = random.Random(seed)
            frames, label = mutate(execution(rng), rng, how, rng.randint(1, per_run))
            label = f"seed {seed}: {label}"
            outcome = fuzzer.run(frames, label)
            fuzzer.check_worker_log(label)
            if outcome.exit_status is not None:
                outcomes[f"exit {outcome.exit_status}"] += 1
            elif outcome.errors:
                outcomes[f"error {outcome.errors[0]}"] += 1
            else:
                outcomes[f"answered ({outcome.replies[-1]})"] += 1
            outcomes["mutated frames"] += label.count("frame ")
            if seed % CHECK_EVERY == 0:
                check_still_correct(fuzzer, random.Random(-seed))
    finally:
        fuzzer.close()
        elapsed = time.monotonic() - started
        print(f"\n{how.__name__}: {runs} runs in {elapsed:.1f} s, {fuzzer.starts} workers")
        for name, count in sorted(outcomes.items()):
            print(f"  {name}: {count}")
    return outcomes


def test_damaged_messages_and_batches_get_an_error_answer() -> None:
    # Headers stay right, so the worker keeps the connection and answers every run.
    outcomes = fuzz(range(1, CONTENT_RUNS + 1), damage_content, per_run=3)
    # A damaged message can become Shutdown (exit 0), never a broken connection (exit 1).
    assert "exit 1" not in outcomes, outcomes
    assert outcomes["error protocol_error"] > CONTENT_RUNS // 4, outcomes


def test_damaged_frames_get_an_answer_or_a_clean_exit() -> None:
    # Each run that breaks the framing costs a worker start (about a second): fewer runs.
    outcomes = fuzz(range(1, FRAME_RUNS + 1), damage_frame, per_run=1)
    assert any(name.startswith("exit") for name in outcomes), outcomes
