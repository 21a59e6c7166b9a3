"""The shapes a ``DataRequest.data`` may take (docs/spark-protocol.md, section 3).

quiver.v1's decoder (:class:`quiver.worker.batch_codec.BatchDecoder`) takes the usual shape, an
IPC stream of one record batch, and keeps its fast path for it. What it refuses is looked at
again here: a bare encapsulated record-batch message (decoded against ``input_schema``) or a
stream of several record batches (:class:`SeveralBatches`, answered one by one). A batch already
decoded passes through, so each of several batches goes through the execution's usual checks.
"""

from __future__ import annotations

from typing import BinaryIO

import pyarrow as pa

from quiver.worker.batch_codec import BatchDecoder
from quiver.worker.errors import ProtocolViolation

_READ_OPTIONS = pa.ipc.IpcReadOptions(ensure_alignment=pa.ipc.Alignment.DataTypeSpecific)


class SeveralBatches(Exception):
    """A DataRequest held several record batches: each is run and answered in turn."""

    def __init__(self, batches: list[pa.RecordBatch]) -> None:
        super().__init__(f"{len(batches)} record batches in one DataRequest")
        self.batches = batches


class SparkBatchDecoder(BatchDecoder):
    """Decode DataRequest bodies: quiver.v1's shape first, then the other shapes allowed."""

    def __init__(self, input_schema: pa.Schema) -> None:
        """Decode bare record-batch messages against ``input_schema``."""
        super().__init__()
        self.input_schema = input_schema

    def decode(self, body: pa.Buffer | BinaryIO | pa.RecordBatch) -> pa.RecordBatch:  # type: ignore[override]
        """Return the one validated batch of ``body``; raise SeveralBatches or ProtocolError."""
        if isinstance(body, pa.RecordBatch):
            self.last_was_known = False  # the execution checks its schema
            return body
        try:
            return super().decode(body)
        except ProtocolViolation as usual_error:
            if not isinstance(body, pa.Buffer):
                raise
            batches = self._other_shapes(body, usual_error)
        if len(batches) == 1:
            return batches[0]
        raise SeveralBatches(batches)

    def _other_shapes(
        self, body: pa.Buffer, usual_error: ProtocolViolation
    ) -> list[pa.RecordBatch]:
        """Decode a bare record-batch message or a stream of several batches, validated."""
        try:
            first = pa.ipc.read_message(body)
        except Exception:  # noqa: BLE001 - not even one message: the usual error says why
            raise usual_error from None
        try:
            if first.type == "record batch":
                batches = [pa.ipc.read_record_batch(first, self.input_schema)]
            elif first.type == "schema":
                batches = list(pa.ipc.open_stream(body, options=_READ_OPTIONS))
            else:
                raise usual_error
            for batch in batches:
                batch.validate(full=True)
        except ProtocolViolation:
            raise
        except Exception as exc:  # whatever Arrow makes of bad bytes, it is the engine's error
            raise ProtocolViolation(
                f"DataRequest.data is neither an Arrow IPC stream nor a record-batch message "
                f"of Init.input_schema: {exc}"
            ) from exc
        if not batches:
            raise ProtocolViolation("DataRequest.data is an Arrow IPC stream with no record batch")
        return batches
