"""Per-execution fast paths for the Arrow IPC stream of every Data body and result.

Each batch travels as a whole IPC stream (schema message, record batch message, end of stream),
and the schema is the same for every batch of an execution. Building a stream writer or reader
per batch (pyarrow's ``new_stream``/``open_stream`` through Python file objects) cost far more
than the bytes of a small batch. These codecs produce and accept the very same bytes, doing the
schema's work once per execution:

- :class:`ResultEncoder` writes ``[schema message, batch.serialize(), end of stream]`` with the
  schema message serialized once; for large batches (over :data:`COPY_LIMIT`) and schemas with
  dictionaries it keeps the zero-copy stream writer of ``execution.encode_batch``.
- :class:`BatchDecoder` recognises the schema message by its bytes (compared, not parsed) and
  reads the one record batch message between it and the end of the stream against the schema
  parsed the first time; anything
  else (another schema, dictionaries, a body not 8-byte aligned) goes the general way.

Both keep every check of the general path: exactly one record batch, full validation.
"""

from __future__ import annotations

from typing import BinaryIO

import pyarrow as pa

# Results up to this size are serialized into one buffer (one copy of the batch): cheaper than
# a stream writer until the copy itself dominates.
COPY_LIMIT = 1 << 20
END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def has_dictionary(schema: pa.Schema) -> bool:
    """Tell whether a dictionary type appears anywhere in ``schema`` (they need extra messages)."""

    def walk(data_type: pa.DataType) -> bool:
        if pa.types.is_dictionary(data_type):
            return True
        return any(walk(data_type.field(i).type) for i in range(data_type.num_fields))

    return any(walk(field.type) for field in schema)


def _encapsulated_size(message: pa.ipc.Message) -> int:
    """Return the bytes ``message`` takes in a stream: continuation and length, metadata, body."""
    return 8 + message.metadata.size + message.body.size


class ResultEncoder:
    """Encode the result batches of one execution (all of ``schema``) as IPC streams."""

    def __init__(self, schema: pa.Schema) -> None:
        """Serialize ``schema``'s message once."""
        self._schema_message = schema.serialize()
        self._fast = not has_dictionary(schema)

    def encode(self, batch: pa.RecordBatch) -> list[bytes | pa.Buffer]:
        """Return the buffers of the one-batch stream of ``batch``."""
        if self._fast and batch.get_total_buffer_size() <= COPY_LIMIT:
            return [self._schema_message, batch.serialize(), END_OF_STREAM]
        from quiver.worker.execution import encode_batch

        return encode_batch(batch)


class BatchDecoder:
    """Decode the Data bodies of one execution, parsing their schema message once."""

    def __init__(self) -> None:
        """Start knowing no schema."""
        self._schema_message: bytes | None = None
        self._schema: pa.Schema | None = None
        # Whether the last decode's schema message had the bytes of one decoded before: a
        # caller that checked that schema then need not check it again.
        self.last_was_known = False

    def decode(self, body: pa.Buffer | BinaryIO) -> pa.RecordBatch:
        """Return the validated batch of ``body`` (raises ProtocolError as decode_batch does)."""
        from quiver.worker.execution import decode_batch

        self.last_was_known = False
        if not isinstance(body, pa.Buffer) or body.address % 8 != 0:
            return decode_batch(body)
        batch = self._decode_known(body)
        if batch is not None:
            self.last_was_known = True
            return batch
        batch = decode_batch(body)
        if not has_dictionary(batch.schema):
            first = pa.ipc.read_message(body)
            self._schema_message = bytes(memoryview(body).cast("B")[: _encapsulated_size(first)])
            self._schema = batch.schema
        return batch

    def _decode_known(self, body: pa.Buffer) -> pa.RecordBatch | None:
        """Decode ``schema message, one record batch message, end of stream`` whose schema
        message has the bytes seen before; None for anything else (the general path decides)."""
        known = self._schema_message
        if known is None:
            return None
        size = len(known)
        view = memoryview(body).cast("B")
        if view.nbytes < size + 16 or view[:size] != known or view[-8:] != END_OF_STREAM:
            return None
        middle = body.slice(size, body.size - size - 8)
        try:
            message = pa.ipc.read_message(middle)
            # Exactly one message between the schema and the end: no second batch hides there.
            if message.type != "record batch" or _encapsulated_size(message) != middle.size:
                return None
            batch = pa.ipc.read_record_batch(message, self._schema)
        except Exception:  # noqa: BLE001 - the general path reports bad bytes precisely
            return None
        return self._validated(batch)

    @staticmethod
    def _validated(batch: pa.RecordBatch) -> pa.RecordBatch | None:
        """Return ``batch`` when fully valid; None lets the general path report why not."""
        try:
            batch.validate(full=True)
        except Exception:  # noqa: BLE001
            return None
        return batch
