"""Spark's ``UdfRequest``/``UdfResponse`` to bytes and back, the Arrow bytes never copied here.

The same reasoning as quiver.v1's codec (:mod:`quiver.protocol.grpc_codec`, whose varint helpers
this reuses): ``UdfRequest{data: DataRequest{data}}`` is read by hand, so the batch stays a
``memoryview`` slice of what gRPC received, and ``UdfResponse{data: DataResponse{data}}`` is
written by hand, the result's buffers joined once into the message. Every other message goes
through protobuf. A ``Cancel`` is decoded as an :class:`EngineCancel`, a stop request, so that
the reading-ahead inbox (:mod:`quiver.transport.inbox`) sees it waiting behind queued batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from quiver.protocol.grpc_codec import _read_varint, _varint, _varint_size
from quiver.protocol.items import UndecodableMessage
from quiver.spark_dialect.messages import spb
from quiver.transport.inbox import StopRequest

# Protobuf wire-format tags: (field number << 3) | 2 (length-delimited).
_ENVELOPE_TAG = (2 << 3) | 2  # UdfRequest.data and UdfResponse.data
_DATA_TAG = (1 << 3) | 2  # DataRequest.data and DataResponse.data
# upb refuses a length varint longer than 5 bytes, even a valid one.
_MAX_LENGTH_VARINT_BYTES = 5
_ALIGNMENT = 8


@dataclass(frozen=True)
class IncomingData:
    """Carry ``DataRequest.data``, left where gRPC received it."""

    data: memoryview


@dataclass(frozen=True)
class OutgoingData:
    """Carry ``DataResponse.data`` as the pieces of one Arrow IPC stream, in order."""

    pieces: tuple[bytes | pa.Buffer, ...]


@dataclass(frozen=True)
class EngineCancel(StopRequest):
    """The engine's ``Cancel`` (a stop request that came over the wire)."""


SparkItem = spb.UdfRequest | IncomingData | EngineCancel | UndecodableMessage


def decode_request(raw: bytes) -> SparkItem:
    """Decode one ``UdfRequest``; never raises (bad bytes become an UndecodableMessage)."""
    data = _decode_data_envelope(raw)
    if data is not None:
        return data
    request = spb.UdfRequest()
    try:
        request.ParseFromString(raw)
    except Exception as exc:  # any parse failure is the peer's malformed input
        return UndecodableMessage(f"a message on the Execute stream is not a UdfRequest: {exc}")
    if request.WhichOneof("request") == "data":
        return IncomingData(memoryview(request.data.data))  # an odd shape: protobuf parsed it
    control = request.control
    if request.HasField("control") and control.WhichOneof("control") == "cancel":
        return EngineCancel(control.cancel.reason)
    return request


def encode_response(item: spb.UdfResponse | OutgoingData) -> bytes:
    """Serialize one ``UdfResponse``; data is written without protobuf.

    The Arrow bytes start 8-byte aligned in the message when the two length varints can be
    padded to get there (bodies under 2 MiB): a receiver may then use the buffers in place.
    """
    if isinstance(item, spb.UdfResponse):
        return item.SerializeToString()
    views = [memoryview(piece).cast("B") for piece in item.pieces]
    body = sum(view.nbytes for view in views)
    inner_size = _varint_size(body)
    outer_size = _varint_size(1 + _MAX_LENGTH_VARINT_BYTES + body)
    # Two tags and two varints precede the body: 2 + outer + inner must be a multiple of 8.
    wanted = 6 - outer_size - inner_size
    if wanted >= 0:
        inner_grow = min(wanted, _MAX_LENGTH_VARINT_BYTES - inner_size)
        inner_size += inner_grow
        outer_size += wanted - inner_grow
    inner_length = 1 + inner_size + body
    prefix = b"".join(
        (
            bytes([_ENVELOPE_TAG]),
            _varint(inner_length, outer_size),
            bytes([_DATA_TAG]),
            _varint(body, inner_size),
        )
    )
    return b"".join((prefix, *views))


def _decode_data_envelope(raw: bytes) -> IncomingData | None:
    """Read ``UdfRequest{data: DataRequest{data}}`` in the shape protobuf libraries write it;
    anything else (other fields, malformed bytes) returns None and is left to protobuf."""
    view = memoryview(raw).cast("B")
    if not view.nbytes or view[0] != _ENVELOPE_TAG:
        return None
    length, pos = _read_varint(view, 1)
    if length is None or pos + length != view.nbytes:
        return None
    data = view[pos:pos]
    while pos < view.nbytes:
        tag, pos = _read_varint(view, pos)
        if tag != _DATA_TAG:
            return None
        size, pos = _read_varint(view, pos)
        if size is None or pos + size > view.nbytes:
            return None
        data = view[pos : pos + size]  # a repeated field takes its last value, as in protobuf
        pos += size
    return IncomingData(data)


def response(**control: object) -> spb.UdfResponse:
    """Build ``UdfResponse{control: UdfControlResponse{KIND: message}}``."""
    return spb.UdfResponse(control=spb.UdfControlResponse(**control))
