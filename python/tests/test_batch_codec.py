"""The per-execution IPC fast paths give the same bytes and the same checks as the general ones."""

from __future__ import annotations

import pyarrow as pa
import pytest

from quiver.worker import batch_codec
from quiver.worker.batch_codec import BatchDecoder, ResultEncoder, decode_batch, encode_batch
from quiver.worker.errors import ProtocolViolation


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
