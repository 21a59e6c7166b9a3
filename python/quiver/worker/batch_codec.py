"""The worker's Arrow IPC codec: every Data body read and every result written goes through here.

:func:`decode_batch` and :func:`encode_batch` are the general paths (any schema, any batch);
the classes below are per-execution fast paths over them.

Each batch travels as a whole IPC stream (schema message, record batch message, end of stream),
and the schema is the same for every batch of an execution. Building a stream writer or reader
per batch (pyarrow's ``new_stream``/``open_stream`` through Python file objects) cost far more
than the bytes of a small batch. These codecs produce and accept the very same bytes, doing the
schema's work once per execution:

- :class:`ResultEncoder` writes ``[schema message, batch.serialize(), end of stream]`` with the
  schema message serialized once; for large batches (over :data:`COPY_LIMIT`) and schemas with
  dictionaries it keeps the zero-copy stream writer of :func:`encode_batch`.
- :class:`BatchDecoder` recognises the schema message by its bytes (compared, not parsed) and
  reads the one record batch message between it and the end of the stream against the schema
  parsed the first time; anything
  else (another schema, dictionaries, a body not 8-byte aligned) goes the general way.

Both keep every check of the general path: exactly one record batch, full validation.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import pyarrow as pa

from quiver.worker.errors import ProtocolViolation, WorkerFailure

# Results up to this size are serialized into one buffer (one copy of the batch): cheaper than
# a stream writer until the copy itself dominates.
COPY_LIMIT = 1 << 20
END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"
# The largest result one message may carry: the engine's frame limit (2 GiB), less a margin for
# the message around the Arrow stream (gRPC's own limit is 2 GiB - 1 byte for the whole message).
# A result over it is refused here, with its size, rather than cut off on its way.
MAX_RESULT_BYTES = 2**31 - 2**16
_READ_OPTIONS = pa.ipc.IpcReadOptions(ensure_alignment=pa.ipc.Alignment.DataTypeSpecific)


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

    @property
    def known_schema(self) -> tuple[bytes, pa.Schema] | None:
        """Return the schema message of the batches decoded so far (its bytes as they arrived)
        and its schema, once one was decoded; None before, or for schemas with dictionaries."""
        if self._schema_message is None or self._schema is None:
            return None
        return self._schema_message, self._schema

    def decode(self, body: pa.Buffer | BinaryIO) -> pa.RecordBatch:
        """Return the validated batch of ``body`` (raises ProtocolError as decode_batch does)."""
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


def decode_batch(body: pa.Buffer | BinaryIO) -> pa.RecordBatch:
    """Read and fully validate the single record batch of an Arrow IPC stream.

    Aligned buffers are not copied: from a ``pa.Buffer`` the reader slices it, and from a
    file-like ``body`` it gets memoryview slices of the received bytes (see
    :class:`quiver.io.ZeroCopyByteStream`). A buffer that is not aligned for its type is copied
    once: UDFs and Arrow's kernels may assume alignment, and a grpc message puts the Arrow bytes
    wherever its field tags end (uds bodies are aligned).

    The batch comes from another process, so it is checked the way Arrow checks untrusted data
    (``validate(full=True)``: buffer sizes, offsets, dictionary indices, UTF-8, nested children)
    before any UDF or kernel reads it; bad bytes must give a ProtocolViolation, never a crash.
    """
    try:
        reader = pa.ipc.open_stream(body, options=_READ_OPTIONS)
        batches = list(reader)
    except Exception as exc:  # whatever Arrow makes of bad bytes, it is the peer's error
        raise ProtocolViolation(
            f"a Data body is not a valid Arrow IPC stream: {error_reason(exc)}"
        ) from exc
    if len(batches) != 1:
        raise ProtocolViolation(
            f"a Data body must hold exactly one record batch, but it holds {len(batches)}"
        )
    batch = batches[0]
    try:
        check_names(batch.schema)
        batch.validate(full=True)
    except Exception as exc:
        raise ProtocolViolation(
            f"a Data batch is not valid Arrow data: {error_reason(exc)}"
        ) from exc
    return batch


def check_names(schema: pa.Schema) -> None:
    """Raise when a field name, at any depth, is not UTF-8 (Python would fail reading it later)."""
    str(schema)


def error_reason(exc: BaseException) -> str:
    """Say what went wrong, with the exception's class when its message alone is unclear."""
    return str(exc) if isinstance(exc, pa.ArrowException) else f"{type(exc).__name__}: {exc}"


class _BufferListSink(io.RawIOBase):
    """A file that keeps what pyarrow writes to it instead of copying it.

    pyarrow hands the body buffers of a batch to ``write`` as ``pa.Buffer`` objects over the
    batch's own memory; keeping references lets the socket send them in place.
    """

    def __init__(self) -> None:
        """Start with nothing written."""
        super().__init__()
        self.parts: list[bytes | pa.Buffer] = []

    def writable(self) -> bool:
        """Accept writes."""
        return True

    def write(self, data: bytes | pa.Buffer) -> int:  # type: ignore[override]
        """Keep ``data``; small writes (message headers, padding) are merged later."""
        self.parts.append(data)
        return memoryview(data).nbytes


def encode_batch(batch: pa.RecordBatch) -> list[bytes | pa.Buffer]:
    """Write ``batch`` as one self-contained Arrow IPC stream, as a list of buffers.

    The batch's data buffers are referenced, not copied; the small pieces in between are
    joined so that the list stays short for ``sendmsg``.
    """
    sink = _BufferListSink()
    with pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), batch.schema) as writer:
        writer.write_batch(batch)
    parts: list[bytes | pa.Buffer] = []
    pending: list[bytes] = []
    for part in sink.parts:
        if isinstance(part, pa.Buffer) and part.size >= _SMALL_WRITE:
            if pending:
                parts.append(b"".join(pending))
                pending = []
            parts.append(part)
        else:
            pending.append(bytes(part))
    if pending:
        parts.append(b"".join(pending))
    check_result_size(batch.schema, sum(memoryview(part).nbytes for part in parts))
    return parts


def check_result_size(schema: pa.Schema, size: int) -> None:
    """Raise WorkerFailure when an encoded result of ``size`` bytes cannot go in one message."""
    if size <= MAX_RESULT_BYTES:
        return
    columns = ", ".join(repr(name) for name in schema.names)
    raise WorkerFailure(
        f"the result of one batch ({columns}) is {_bytes_text(size)} in Arrow IPC form, over the "
        f"limit of {_bytes_text(MAX_RESULT_BYTES)} for one message to the engine; give the UDF "
        "smaller batches (quiver run --batch-rows or --batch-bytes; Session.map(batch_rows=..., "
        "batch_bytes=...))",
        schema.names[0] if schema.names else "",
    )


def _bytes_text(size: int) -> str:
    """Say a byte count in GiB and exactly: ``2.00 GiB (2,147,488,048 bytes)``."""
    return f"{size / 2**30:.2f} GiB ({size:,} bytes)"


# Buffers smaller than this are copied into their neighbours: a copy of a few bytes is
# cheaper than one more entry for sendmsg.
_SMALL_WRITE = 256
