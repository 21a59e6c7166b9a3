"""Tests of ZeroCopyByteStream: reads within and across chunks, blocking, and Arrow IPC."""

from __future__ import annotations

import random
import threading

import numpy as np
import pyarrow as pa
import pytest

from quiver.io import ZeroCopyByteStream

WAIT = 0.2  # how long a reader must stay blocked to count as blocked
JOIN = 5.0


def stream_of(*chunks: bytes, finish: bool = False) -> ZeroCopyByteStream:
    stream = ZeroCopyByteStream()
    for chunk in chunks:
        stream.add_next_chunk(chunk)
    if finish:
        stream.finish()
    return stream


def address(view: memoryview) -> int:
    """Return the address of a memoryview's first byte."""
    return np.frombuffer(view, dtype=np.uint8).__array_interface__["data"][0]


# ---- reads inside one chunk: zero copy ----


def test_read_exact_chunk_is_zero_copy() -> None:
    chunk = b"hello"
    result = stream_of(chunk).read(5)
    assert bytes(result) == b"hello"
    assert result.obj is chunk


def test_read_partial_chunk_slices_it() -> None:
    chunk = b"hello world"
    stream = stream_of(chunk, finish=True)
    first, second = stream.read(5), stream.read(6)
    assert (bytes(first), bytes(second)) == (b"hello", b" world")
    assert first.obj is chunk and second.obj is chunk
    assert address(second) == address(first) + 5
    assert stream.read(1).nbytes == 0


def test_read_multiple_chunks_sequentially() -> None:
    chunks = [b"aaa", b"bbb", b"ccc"]
    stream = stream_of(*chunks)
    for chunk in chunks:
        result = stream.read(3)
        assert bytes(result) == chunk
        assert result.obj is chunk


@pytest.mark.parametrize(
    "make", [bytes, bytearray, memoryview, pa.py_buffer], ids=["bytes", "bytearray", "mv", "pa"]
)
def test_every_chunk_type_is_read_without_copy(make) -> None:
    chunk = make(b"0123456789")
    result = stream_of(chunk).read(4)
    assert bytes(result) == b"0123"
    assert address(result) == address(memoryview(chunk))


# ---- reads across chunks: one concatenation ----


def test_read_across_two_chunks() -> None:
    assert bytes(stream_of(b"aaa", b"bbb").read(6)) == b"aaabbb"


def test_read_across_three_chunks() -> None:
    assert bytes(stream_of(b"ab", b"cd", b"ef").read(6)) == b"abcdef"


def test_read_partial_then_cross_boundary() -> None:
    first, second = b"aabb", b"ccdd"
    stream = stream_of(first, second)
    r1, r2, r3 = stream.read(2), stream.read(4), stream.read(2)
    assert (bytes(r1), bytes(r2), bytes(r3)) == (b"aa", b"bbcc", b"dd")
    assert r1.obj is first and r3.obj is second
    assert r2.obj is not first and r2.obj is not second  # the one joined copy


def test_cross_boundary_read_consumes_full_middle_chunk() -> None:
    stream = stream_of(b"aa", b"bb", b"cc")
    stream.read(1)
    assert bytes(stream.read(5)) == b"abbcc"


# ---- the end of the stream ----


def test_read_at_end_returns_empty_view() -> None:
    stream = stream_of(finish=True)
    assert stream.finished
    result = stream.read(1)
    assert isinstance(result, memoryview) and result.nbytes == 0


def test_finished_after_consuming_all_data() -> None:
    stream = stream_of(b"data", finish=True)
    assert not stream.finished
    assert bytes(stream.read(4)) == b"data"
    assert stream.finished
    assert stream.read(1).nbytes == 0


def test_end_mid_read_returns_fewer_bytes() -> None:
    stream = stream_of(b"data", finish=True)
    assert bytes(stream.read(3)) == b"dat"
    assert not stream.finished
    assert bytes(stream.read(2)) == b"a"
    assert stream.read(2).nbytes == 0


def test_end_during_cross_boundary_read_returns_fewer_bytes() -> None:
    stream = stream_of(b"ab", b"cd", finish=True)
    assert bytes(stream.read(5)) == b"abcd"
    assert stream.finished


def test_finished_property_needs_finish_and_consumption() -> None:
    stream = stream_of(b"x")
    assert not stream.finished
    stream.read(1)
    assert not stream.finished  # finish() not called yet
    stream.finish()
    assert stream.finished
    stream.finish()  # idempotent
    assert stream.finished


# ---- sizes ----


def test_zero_size_read_returns_at_once_without_data() -> None:
    stream = ZeroCopyByteStream()
    assert stream.read(0) == memoryview(b"")
    assert stream.read1(0) == memoryview(b"")


def test_read_all_with_negative_or_none_size() -> None:
    assert bytes(stream_of(b"ab", b"cd", finish=True).read(-1)) == b"abcd"
    assert bytes(stream_of(b"ab", b"cd", finish=True).read()) == b"abcd"
    assert bytes(stream_of(b"ab", finish=True).read(None)) == b"ab"
    chunk = b"single"
    assert stream_of(chunk, finish=True).read(-1).obj is chunk


def test_read1_stays_inside_one_chunk() -> None:
    chunk = b"abc"
    stream = stream_of(chunk, b"def", finish=True)
    first = stream.read1(10)
    assert bytes(first) == b"abc" and first.obj is chunk
    assert bytes(stream.read1(2)) == b"de"
    assert bytes(stream.read1()) == b"f"
    assert stream.read1().nbytes == 0


def test_readinto_fills_across_chunks() -> None:
    stream = stream_of(b"abc", b"def", b"g", finish=True)
    target = bytearray(5)
    assert stream.readinto(target) == 5 and target == b"abcde"
    assert stream.readinto(target) == 2 and target[:2] == b"fg"
    assert stream.readinto(target) == 0
    assert stream.readinto(bytearray()) == 0


def test_tell_counts_consumed_bytes() -> None:
    stream = stream_of(b"abc", b"def")
    stream.read(2)
    stream.read(3)
    assert stream.tell() == 5


def test_empty_chunks_are_skipped() -> None:
    stream = stream_of(b"", b"ab", b"", b"c", finish=True)
    assert bytes(stream.read(3)) == b"abc"


# ---- producer errors ----


@pytest.mark.parametrize("bad", [None, "text", 5, 1.5])
def test_add_chunk_of_wrong_type_raises(bad) -> None:
    with pytest.raises(TypeError, match="chunk must be"):
        ZeroCopyByteStream().add_next_chunk(bad)


def test_add_chunk_after_finish_raises() -> None:
    stream = stream_of(finish=True)
    with pytest.raises(ValueError, match="after finish"):
        stream.add_next_chunk(b"data")


def test_initial_chunks() -> None:
    stream = ZeroCopyByteStream([b"he", b"llo"])
    assert bytes(stream.read(5)) == b"hello"
    with pytest.raises(TypeError):
        ZeroCopyByteStream([5])  # type: ignore[list-item]


def test_read_after_close_raises() -> None:
    stream = stream_of(b"abc")
    stream.close()
    with pytest.raises(ValueError):
        stream.read(1)


# ---- blocking reads and the producer thread ----


def start_reader(target) -> tuple[threading.Thread, dict]:
    """Run ``target(stream)`` in a thread; collect its result or exception."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = target()
        except BaseException as exc:  # noqa: BLE001 - the test inspects whatever happened
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WAIT)
    assert thread.is_alive(), "the reader should be blocked"
    return thread, outcome


def test_blocked_read_is_woken_by_a_chunk() -> None:
    stream = ZeroCopyByteStream()
    thread, outcome = start_reader(lambda: stream.read(3))
    stream.add_next_chunk(b"abc")
    thread.join(JOIN)
    assert bytes(outcome["result"]) == b"abc"


def test_cross_boundary_read_blocks_for_the_next_chunk() -> None:
    stream = stream_of(b"aa")
    thread, outcome = start_reader(lambda: stream.read(4))
    stream.add_next_chunk(b"bb")
    thread.join(JOIN)
    assert bytes(outcome["result"]) == b"aabb"


def test_blocked_read_is_woken_by_finish() -> None:
    stream = stream_of(b"a")
    thread, outcome = start_reader(lambda: stream.read(3))
    stream.finish()
    thread.join(JOIN)
    assert bytes(outcome["result"]) == b"a"


def test_blocked_read_is_woken_by_abort() -> None:
    stream = ZeroCopyByteStream()
    thread, outcome = start_reader(lambda: stream.read(3))
    failure = ConnectionError("transport broke")
    stream.abort(failure)
    thread.join(JOIN)
    assert outcome["error"] is failure
    with pytest.raises(ConnectionError):
        stream.read(1)
    with pytest.raises(ValueError):
        stream.add_next_chunk(b"late")


def test_blocked_read_is_woken_by_close() -> None:
    stream = ZeroCopyByteStream()
    thread, outcome = start_reader(lambda: stream.read(3))
    stream.close()
    thread.join(JOIN)
    assert isinstance(outcome["error"], ValueError)


def test_concurrent_producer_delivers_every_byte_in_order() -> None:
    data = bytes(random.Random(7).randbytes(200_000))
    stream = ZeroCopyByteStream()

    def produce() -> None:
        rng = random.Random(8)
        pos = 0
        while pos < len(data):
            step = rng.randint(1, 5000)
            stream.add_next_chunk(data[pos : pos + step])
            pos += step
        stream.finish()

    producer = threading.Thread(target=produce)
    producer.start()
    rng = random.Random(9)
    parts = []
    while (part := stream.read(rng.randint(1, 7000))).nbytes:
        parts.append(bytes(part))
    producer.join(JOIN)
    assert b"".join(parts) == data


# ---- Arrow IPC through the stream ----


def sample_batches() -> list[pa.RecordBatch]:
    """Three small batches with strings, nulls, a dictionary column and a list column."""
    schema = pa.schema(
        [
            ("i", pa.int64()),
            ("s", pa.string()),
            ("d", pa.dictionary(pa.int32(), pa.string())),
            ("l", pa.list_(pa.int32())),
        ]
    )
    batches = []
    for n in range(3):
        batches.append(
            pa.record_batch(
                [
                    pa.array([n, None, n + 2]),
                    pa.array([f"row{n}", None, "é"]),
                    pa.array(["red", "green", None]).dictionary_encode(),
                    pa.array([[n], None, [1, 2, 3]], type=pa.list_(pa.int32())),
                ],
                schema=schema,
            )
        )
    return batches


def ipc_stream_bytes(batches: list[pa.RecordBatch]) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batches[0].schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def read_through_stream(chunks: list[bytes]) -> list[pa.RecordBatch]:
    stream = ZeroCopyByteStream(chunks)
    stream.finish()
    return list(pa.ipc.open_stream(stream))


def test_ipc_stream_split_at_every_byte_into_two_chunks() -> None:
    batches = sample_batches()
    data = ipc_stream_bytes(batches)
    for cut in range(len(data) + 1):
        result = read_through_stream([data[:cut], data[cut:]])
        assert len(result) == len(batches), f"cut at {cut}"
        assert all(a.equals(b) for a, b in zip(result, batches, strict=True)), f"cut at {cut}"


def test_ipc_stream_split_at_random_points_into_many_chunks() -> None:
    batches = sample_batches()
    data = ipc_stream_bytes(batches)
    rng = random.Random(1234)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(2, 40)))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        result = read_through_stream(chunks)
        assert all(a.equals(b) for a, b in zip(result, batches, strict=True))
        assert len(result) == len(batches)


def test_ipc_stream_in_one_chunk_is_read_without_copy() -> None:
    batches = sample_batches()
    chunk = pa.py_buffer(ipc_stream_bytes(batches))
    result = read_through_stream([chunk])
    values = result[1].column("i").buffers()[1]
    assert chunk.address <= values.address < chunk.address + chunk.size


def test_ipc_stream_through_an_explicit_python_file() -> None:
    batches = sample_batches()
    stream = ZeroCopyByteStream([ipc_stream_bytes(batches)])
    stream.finish()
    result = list(pa.ipc.open_stream(pa.PythonFile(stream, mode="r")))
    assert len(result) == 3 and all(a.equals(b) for a, b in zip(result, batches, strict=True))


def test_ipc_stream_fed_by_a_producer_thread() -> None:
    batches = sample_batches()
    data = ipc_stream_bytes(batches)
    stream = ZeroCopyByteStream()

    def produce() -> None:
        for pos in range(0, len(data), 37):
            stream.add_next_chunk(data[pos : pos + 37])
        stream.finish()

    producer = threading.Thread(target=produce)
    producer.start()
    result = list(pa.ipc.open_stream(stream))
    producer.join(JOIN)
    assert all(a.equals(b) for a, b in zip(result, batches, strict=True)) and len(result) == 3
