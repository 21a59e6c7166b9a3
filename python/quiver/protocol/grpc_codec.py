"""Turn quiver.v1 messages of the ``grpc`` transport into bytes and back, sparing Arrow copies.

gRPC hands a method's deserializer the whole message as one ``bytes`` object and wants one
``bytes`` object back from its serializer. Parsing ``EngineMessage{data}`` with protobuf would copy
the Arrow IPC bytes twice more (into the parsed message, then into a new ``bytes`` when the field is
read), and building ``WorkerMessage{data}`` with protobuf would copy a result twice as well. So the
``data`` envelopes are read and written by hand in protobuf wire format: the batch becomes a
``memoryview`` slice of what gRPC received, and a result is joined once, with its few bytes of
field tags and lengths, into the ``bytes`` gRPC sends. Every other message goes through protobuf.
"""

from __future__ import annotations

from quiver._proto import pb
from quiver.protocol.items import (
    EngineItem,
    IncomingBatch,
    OutgoingBatch,
    UndecodableMessage,
    WorkerItem,
    parse_engine_message,
)

__all__ = [
    "EngineItem",
    "IncomingBatch",
    "OutgoingBatch",
    "UndecodableMessage",
    "WorkerItem",
    "decode_engine_message",
    "encode_worker_message",
]

# Protobuf wire-format tags of the fields read and written by hand: (field number << 3) | type.
_DATA_ENVELOPE_TAG = (3 << 3) | 2  # EngineMessage.data and WorkerMessage.data (length-delimited)
_SEQUENCE_TAG = (1 << 3) | 0  # Data.sequence (varint)
_ARROW_IPC_TAG = (2 << 3) | 2  # Data.arrow_ipc (length-delimited)
_MAX_VARINT_BYTES = 10
# upb (protobuf for Python) refuses a length varint longer than 5 bytes, even a valid one.
_MAX_LENGTH_VARINT_BYTES = 5
# Where the Arrow bytes of a result start in the message: Arrow wants 8-byte aligned buffers.
_ALIGNMENT = 8


def decode_engine_message(raw: bytes) -> EngineItem:
    """Decode one Execute request; a Data message comes out as an IncomingBatch.

    Never raises: gRPC would turn an exception here into an INTERNAL status, while the protocol
    wants a ProtocolError message on the stream.
    """
    batch = _decode_data_envelope(raw)
    if batch is not None:
        return batch
    message = parse_engine_message(raw, "a message on the Execute call")
    if isinstance(message, UndecodableMessage):
        return message
    if message.WhichOneof("kind") == "data":
        # A Data message not in the canonical shape (unknown fields, say): protobuf has parsed
        # it, and the one copy made reading the field is the price of the odd shape.
        data = message.data
        return IncomingBatch(data.sequence, memoryview(data.arrow_ipc))
    return message


def encode_worker_message(item: WorkerItem) -> bytes:
    """Serialize one Execute response; an OutgoingBatch is written without protobuf.

    The Arrow bytes of a result start at a multiple of 8 bytes into the message, so that a
    receiver whose message buffer is 8-byte aligned can use the Arrow buffers in place. The
    varints before them are padded to get there: over-long varints, which protobuf parsers read.
    """
    if isinstance(item, pb.WorkerMessage):
        return item.SerializeToString()
    pieces = item.arrow_ipc if isinstance(item.arrow_ipc, tuple) else (item.arrow_ipc,)
    views = [memoryview(piece).cast("B") for piece in pieces]
    body_bytes = sum(view.nbytes for view in views)
    # Three varints precede the Arrow bytes: the Data length, the sequence, the Arrow length.
    # Data's length is at most 18 bytes of header plus the body: size its varint for that.
    shortest = [
        _varint_size(2 + _MAX_VARINT_BYTES + _MAX_LENGTH_VARINT_BYTES + body_bytes),
        _varint_size(item.sequence),
        _varint_size(body_bytes),
    ]
    limits = [_MAX_LENGTH_VARINT_BYTES, _MAX_VARINT_BYTES, _MAX_LENGTH_VARINT_BYTES]
    sizes = list(shortest)
    padding = -(3 + sum(sizes)) % _ALIGNMENT
    for index in (1, 2, 0):  # the sequence first: its varint has the most room
        grow = min(padding, limits[index] - sizes[index])
        sizes[index] += grow
        padding -= grow
    if padding:
        sizes = shortest  # only with huge sequence numbers: then the receiver may copy
    data_length = 1 + sizes[1] + 1 + sizes[2] + body_bytes
    prefix = b"".join(
        (
            bytes([_DATA_ENVELOPE_TAG]),
            _varint(data_length, sizes[0]),
            bytes([_SEQUENCE_TAG]),
            _varint(item.sequence, sizes[1]),
            bytes([_ARROW_IPC_TAG]),
            _varint(body_bytes, sizes[2]),
        )
    )
    # grpcio sends only a ``bytes`` object, so this join is the one copy of the result batch that
    # cannot be avoided on this side (grpcio then copies that object into its own slice: the
    # second copy, in grpcio's C core, which Python cannot reach).
    return b"".join((prefix, *views))


def _decode_data_envelope(raw: bytes) -> IncomingBatch | None:
    """Read ``EngineMessage{data}`` in the shape every protobuf library writes, else return None.

    That shape is the data field alone, holding at most a sequence and the Arrow bytes (in any
    order; a repeated field takes its last value, as in protobuf). Anything else, malformed
    bytes included, is left to protobuf, which parses what it can and explains what it cannot.
    """
    view = memoryview(raw).cast("B")
    if not view.nbytes or view[0] != _DATA_ENVELOPE_TAG:
        return None
    length, pos = _read_varint(view, 1)
    if length is None or pos + length != view.nbytes:
        return None
    sequence = 0
    arrow_ipc = view[pos:pos]
    while pos < view.nbytes:
        tag, pos = _read_varint(view, pos)
        if tag == _SEQUENCE_TAG:
            value, pos = _read_varint(view, pos)
            if value is None:
                return None
            sequence = value & 0xFFFF_FFFF_FFFF_FFFF  # uint64 wraps as protobuf does
        elif tag == _ARROW_IPC_TAG:
            size, pos = _read_varint(view, pos)
            if size is None or pos + size > view.nbytes:
                return None
            arrow_ipc = view[pos : pos + size]
            pos += size
        else:
            return None
    return IncomingBatch(sequence, arrow_ipc)


def _read_varint(view: memoryview, pos: int) -> tuple[int | None, int]:
    """Read a base-128 varint at ``pos``; return (value, next position), value None if bad."""
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if pos + index >= view.nbytes:
            return None, pos
        byte = view[pos + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, pos + index + 1
    return None, pos


def _varint_size(value: int) -> int:
    """Return how many bytes the shortest varint encoding of ``value`` takes."""
    return max(1, (value.bit_length() + 6) // 7)


def _varint(value: int, size: int) -> bytes:
    """Encode a non-negative integer as a base-128 varint of exactly ``size`` bytes.

    Bytes past the shortest encoding carry zero bits with the continuation bit set.
    """
    out = bytearray()
    for _ in range(size - 1):
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    if value >= 0x80:
        raise ValueError(f"a varint of {size} bytes cannot hold the value")
    out.append(value)
    return bytes(out)
