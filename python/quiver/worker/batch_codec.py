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
  reads the record batch message straight against the schema parsed the first time; anything
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
        self._schema_metadata: pa.Buffer | None = None
        self._schema: pa.Schema | None = None

    def decode(self, body: pa.Buffer | BinaryIO) -> pa.RecordBatch:
        """Return the validated batch of ``body`` (raises ProtocolError as decode_batch does)."""
        from quiver.worker.execution import decode_batch

        if not isinstance(body, pa.Buffer) or body.address % 8 != 0:
            return decode_batch(body)
        batch = self._decode_known(body)
        if batch is not None:
            return batch
        batch = decode_batch(body)
        if not has_dictionary(batch.schema):
            first = pa.ipc.MessageReader.open_stream(body).read_next_message()
            self._schema_metadata = first.metadata
            self._schema = batch.schema
        return batch

    def _decode_known(self, body: pa.Buffer) -> pa.RecordBatch | None:
        """Decode a stream whose schema message is the one seen before; None otherwise."""
        if self._schema_metadata is None:
            return None
        try:
            reader = pa.ipc.MessageReader.open_stream(body)
            first = reader.read_next_message()
            if first.type != "schema" or not first.metadata.equals(self._schema_metadata):
                return None
            second = reader.read_next_message()
            if second.type != "record batch":
                return None
            batch = pa.ipc.read_record_batch(second, self._schema)
        except Exception:  # noqa: BLE001 - the general path reports bad bytes precisely
            return None
        try:
            reader.read_next_message()
            return None  # a second message: the general path says what is wrong
        except StopIteration:
            pass  # the end of the stream right after the batch: the only shape accepted here
        except Exception:  # noqa: BLE001
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
