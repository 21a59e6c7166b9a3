"""The per-execution IPC fast paths give the same bytes and the same checks as the general ones."""

from __future__ import annotations

import pyarrow as pa
import pytest

from quiver.worker import batch_codec
from quiver.worker.batch_codec import BatchDecoder, ResultEncoder, decode_batch, encode_batch
from quiver.worker.errors import ProtocolViolation, WorkerFailure


def joined(parts) -> pa.Buffer:
    """Join encoded parts into one 64-byte aligned buffer, as a uds body arrives."""
    data = b"".join(bytes(memoryview(part)) for part in parts)
    body = pa.allocate_buffer(len(data), resizable=False)
    memoryview(body).cast("B")[:] = data  # type: ignore[index]
    return body


BATCHES = [
    pa.record_batch({"s": pa.array(["a", None, "ccc"])}),
    pa.record_batch({"i": pa.array([1, 2], pa.int64()), "l": pa.array([[1], None])}),
    pa.record_batch({"d": pa.array(["x", "y", "x"]).dictionary_encode()}),
    pa.record_batch({"big": pa.array(["z" * 1000] * 2000)}),  # over the copy limit
]


@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: b.schema.names[0])
def test_results_are_the_bytes_of_the_stream_writer(batch):
    assert joined(ResultEncoder(batch.schema).encode(batch)) == joined(encode_batch(batch))


# A slice of a batch with nulls: its offsets and validity start inside their buffers.
SLICED = pa.record_batch({"sliced": pa.array(["ab", None, "cde"] * 50)}).slice(7, 100)


@pytest.mark.parametrize("batch", [*BATCHES, SLICED], ids=lambda b: b.schema.names[0])
def test_a_result_written_into_memory_is_the_stream_its_buffers_make(batch):
    encoded = ResultEncoder(batch.schema).encode(batch)
    expected = joined(encode_batch(batch))
    if pa.types.is_dictionary(batch.schema.types[0]):
        assert not hasattr(encoded, "write_into")  # the general writer, buffers only
        return
    assert encoded.nbytes == expected.size  # counted before anything is copied
    memory = bytearray(encoded.nbytes + 64)
    written = encoded.write_into(memoryview(memory)[: encoded.nbytes])
    assert written == encoded.nbytes
    assert bytes(memory[:written]) == expected.to_pybytes()
    assert memory[written:] == bytearray(64)
    assert decode_batch(pa.py_buffer(bytes(memory[:written]))).equals(batch)


def test_writing_a_result_into_too_little_memory_fails_without_writing_past_it():
    batch = BATCHES[3]
    encoded = ResultEncoder(batch.schema).encode(batch)
    memory = bytearray(encoded.nbytes)
    with pytest.raises(OSError, match="out of bounds"):
        encoded.write_into(memoryview(memory)[: encoded.nbytes - 100])
    assert memory[encoded.nbytes - 100 :] == bytearray(100)


def test_a_result_too_large_for_one_message_is_refused_when_encoded(monkeypatch):
    monkeypatch.setattr(batch_codec, "MAX_RESULT_BYTES", 1000)
    with pytest.raises(WorkerFailure, match="over the limit"):
        ResultEncoder(BATCHES[3].schema).encode(BATCHES[3])


@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: b.schema.names[0])
def test_bodies_decode_as_the_general_reader_does(batch):
    decoder = BatchDecoder()
    body = joined(encode_batch(batch))
    for _ in range(3):  # the first learns the schema, the next take the fast path
        assert decoder.decode(body).equals(decode_batch(body))


def test_the_fast_path_keeps_the_checks():
    batch = BATCHES[0]
    decoder = BatchDecoder()
    decoder.decode(joined(encode_batch(batch)))
    two = pa.BufferOutputStream()
    with pa.ipc.new_stream(two, batch.schema) as writer:
        writer.write_batch(batch)
        writer.write_batch(batch)
    with pytest.raises(ProtocolViolation, match="exactly one record batch"):
        decoder.decode(joined([two.getvalue()]))
    bad = bytearray(bytes(memoryview(joined(encode_batch(batch)))))
    bad[-40:-8] = b"\xff" * 32  # the string data and offsets' tail
    with pytest.raises(ProtocolViolation):
        decoder.decode(joined([bytes(bad)]))


def test_later_bodies_skip_the_general_reader(monkeypatch):
    calls = []
    general = batch_codec.decode_batch
    monkeypatch.setattr(batch_codec, "decode_batch", lambda body: calls.append(1) or general(body))
    decoder = BatchDecoder()
    body = joined(encode_batch(BATCHES[0]))
    for _ in range(3):
        decoder.decode(body)
    assert len(calls) == 1
