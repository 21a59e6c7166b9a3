"""What a transport hands the worker's runtime, and what it sends back, whatever the transport.

A transport turns its bytes into these: an ``EngineMessage`` parsed by protobuf, a batch whose
Arrow bytes stay where they arrived, or the reason some bytes are not a message (answered with a
ProtocolError). Results leave as ``WorkerMessage`` or a batch of Arrow buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from quiver._proto import pb


@dataclass(frozen=True)
class IncomingBatch:
    """Carry ``Data{sequence, arrow_ipc}``, its Arrow bytes left where they arrived."""

    sequence: int
    arrow_ipc: memoryview | pa.Buffer


@dataclass(frozen=True)
class UndecodableMessage:
    """Stand for bytes that are not an ``EngineMessage`` (answered with a ProtocolError)."""

    reason: str


@dataclass(frozen=True)
class OutgoingBatch:
    """Carry ``WorkerMessage{data}`` whose Arrow bytes are still Arrow buffers: one, or the
    pieces of the IPC stream in order (joined only once, into the message gRPC sends)."""

    sequence: int
    arrow_ipc: pa.Buffer | bytes | tuple[pa.Buffer | bytes, ...]


EngineItem = pb.EngineMessage | IncomingBatch | UndecodableMessage
WorkerItem = pb.WorkerMessage | OutgoingBatch


def parse_engine_message(
    raw: bytes | memoryview, where: str
) -> pb.EngineMessage | UndecodableMessage:
    """Parse an ``EngineMessage``; bytes that are not one give an UndecodableMessage.

    Never raises: whatever the bytes, the runtime answers them with a ProtocolError. Protobuf
    reports most damage as DecodeError, but some as other exceptions (a string field that is not
    UTF-8, for one, depending on the protobuf implementation).
    """
    message = pb.EngineMessage()
    try:
        message.ParseFromString(bytes(raw))
    except Exception as exc:  # any parse failure is the peer's malformed input
        return UndecodableMessage(f"{where} is not an EngineMessage: {type(exc).__name__}: {exc}")
    return message
