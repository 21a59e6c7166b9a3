"""Tests of the uds framing codec (docs/protocol.md, section 4)."""

from __future__ import annotations

import random
import socket
import struct
import threading

import pyarrow as pa
import pytest

from quiver._proto import pb
from quiver.protocol.framing import (
    HEADER,
    HEADER_SIZE,
    MAGIC,
    Frame,
    FrameDecoder,
    FrameKind,
    FrameLimits,
    FramingError,
    TruncatedFrameError,
    encode_control_frame,
    encode_data_frame,
    pack_header,
    parse_header,
)
from quiver.transport.uds import read_frame, send_frame

# docs/protocol.md, section 4: the control frame of EngineMessage{finish{}}.
DOC_EXAMPLE = bytes.fromhex(
    "51 56 52 31  01 00 00 00  00 00 00 00 00 00 00 00  02 00 00 00  00 00 00 00"
    "  00 00 00 00 00 00 00 00  22 00".replace(" ", "")
)
SMALL = FrameLimits(max_metadata_bytes=1024, max_body_bytes=4096)


def joined(buffers) -> bytes:
    return b"".join(bytes(memoryview(b)) for b in buffers)


def header(kind=1, flags=0, r16=0, seq=0, meta=0, r32=0, body=0, magic=MAGIC) -> bytes:
    return HEADER.pack(magic, kind, flags, r16, seq, meta, r32, body)


def decode_all(data: bytes, limits: FrameLimits = SMALL) -> list[Frame]:
    decoder = FrameDecoder(limits)
    frames = decoder.feed(data)
    decoder.close()
    return frames


# ---- the documented bytes ----


def test_header_is_32_bytes() -> None:
    assert HEADER_SIZE == 32 and HEADER.format == "<4sBBHQIIQ"


def test_doc_example_encodes_exactly() -> None:
    metadata = pb.EngineMessage(finish=pb.Finish()).SerializeToString()
    assert metadata == b"\x22\x00"
    assert joined(encode_control_frame(metadata)) == DOC_EXAMPLE


def test_doc_example_decodes() -> None:
    (frame,) = decode_all(DOC_EXAMPLE)
    assert frame.kind is FrameKind.CONTROL and frame.sequence == 0
    message = pb.EngineMessage()
    message.ParseFromString(frame.metadata)
    assert message.WhichOneof("kind") == "finish"


# ---- round trips ----


def test_encoding_returns_unjoined_buffers() -> None:
    body = [pa.py_buffer(b"abc"), b"defg"]
    buffers = encode_data_frame(9, body)
    assert len(buffers) == 3 and buffers[1] is body[0] and buffers[2] is body[1]
    kind, _, _, seq, meta, _, length = HEADER.unpack(buffers[0])[1:]
    assert (kind, seq, meta, length) == (2, 9, 0, 7)


def test_round_trip_through_decoder_byte_by_byte() -> None:
    frames = [
        encode_control_frame(b"hello"),
        encode_data_frame(2**64 - 1, pa.py_buffer(b"x" * 100)),
        encode_data_frame(0, b""),
        encode_control_frame(b""),
    ]
    data = b"".join(joined(f) for f in frames)
    decoder = FrameDecoder(SMALL)
    out = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    decoder.close()
    assert [(f.kind, f.sequence, f.metadata, f.body.to_pybytes()) for f in out] == [
        (FrameKind.CONTROL, 0, b"hello", b""),
        (FrameKind.DATA, 2**64 - 1, b"", b"x" * 100),
        (FrameKind.DATA, 0, b"", b""),
        (FrameKind.CONTROL, 0, b"", b""),
    ]


def test_round_trip_over_a_socket_with_aligned_body() -> None:
    batch = pa.record_batch({"a": pa.array(range(1000)), "s": pa.array(["v"] * 1000)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    ipc = sink.getvalue()
    left, right = socket.socketpair()
    with left, right:
        send_frame(left, encode_control_frame(b"meta"))
        send_frame(left, encode_data_frame(5, ipc))
        left.shutdown(socket.SHUT_WR)
        control, data = read_frame(right), read_frame(right)
        assert read_frame(right) is None  # EOF at a frame boundary
    assert control.metadata == b"meta" and control.body.size == 0
    assert data.sequence == 5 and data.body.address % 64 == 0
    (result,) = list(pa.ipc.open_stream(data.body))
    assert result.equals(batch)
    values = result.column("a").buffers()[1]
    assert data.body.address <= values.address < data.body.address + data.body.size


def test_large_frame_survives_partial_sends() -> None:
    body = bytes(range(256)) * 40_000  # 10 MB: more than a socket buffer holds
    left, right = socket.socketpair()
    received: list = []
    with left, right:
        reader = threading.Thread(target=lambda: received.append(read_frame(right)))
        reader.start()
        send_frame(left, encode_data_frame(1, [body[:3], body[3:]]))
        reader.join(10)
    assert received[0].body.to_pybytes() == body


# ---- every rejection ----


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (header(magic=b"QVR2"), "bad frame magic"),
        (header(magic=b"HTTP"), "does not speak"),
        (header(kind=0), "unknown frame kind 0"),
        (header(kind=3), "unknown frame kind 3"),
        (header(flags=1), "flags must be 0"),
        (header(r16=1), "reserved header fields must be 0"),
        (header(r32=7), "reserved header fields must be 0"),
        (header(kind=1, body=1), "control frame with a body of 1 bytes"),
        (header(kind=1, seq=3), "control frame with sequence 3"),
        (header(kind=2, meta=4), "data frame with 4 bytes of metadata"),
        (header(kind=1, meta=1025), "metadata of 1025 bytes is over the limit of 1024"),
        (header(kind=2, body=4097), "body of 4097 bytes is over the limit of 4096"),
    ],
)
def test_bad_header_raises_framing_error(raw: bytes, message: str) -> None:
    with pytest.raises(FramingError, match=message):
        parse_header(raw, SMALL)
    with pytest.raises(FramingError, match=message):
        FrameDecoder(SMALL).feed(raw)


def test_default_limits_are_64_mib_and_2_gib() -> None:
    parse_header(header(kind=1, meta=64 << 20))
    parse_header(header(kind=2, body=2 << 30))
    with pytest.raises(FramingError, match="over the limit"):
        parse_header(header(kind=1, meta=(64 << 20) + 1))
    with pytest.raises(FramingError, match="over the limit"):
        parse_header(header(kind=2, body=(2 << 30) + 1))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (DOC_EXAMPLE[:10], "expected 32 bytes, got 10"),
        (DOC_EXAMPLE[:33], "expected 34 bytes, got 33"),
        (joined(encode_data_frame(1, b"x" * 50))[:60], "expected 82 bytes, got 60"),
    ],
)
def test_decoder_reports_truncation(data: bytes, message: str) -> None:
    decoder = FrameDecoder(SMALL)
    assert decoder.feed(data) == []
    with pytest.raises(TruncatedFrameError, match=message):
        decoder.close()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (DOC_EXAMPLE[:10], "frame header: expected 32 bytes, got 10"),
        (DOC_EXAMPLE[:33], "frame metadata: expected 2 bytes, got 1"),
        (joined(encode_data_frame(1, b"x" * 50))[:60], "frame body: expected 50 bytes, got 28"),
    ],
)
def test_read_frame_reports_truncation(data: bytes, message: str) -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(data)
        left.shutdown(socket.SHUT_WR)
        with pytest.raises(TruncatedFrameError, match=message):
            read_frame(right, SMALL)


def test_read_frame_rejects_bad_header_before_reading_on() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(header(kind=2, body=1 << 40))
        with pytest.raises(FramingError, match="over the limit"):
            read_frame(right, SMALL)


def test_encoder_rejects_out_of_range_fields() -> None:
    with pytest.raises(ValueError):
        pack_header(FrameKind.DATA, 2**64, 0, 0)
    with pytest.raises(ValueError):
        pack_header(FrameKind.DATA, -1, 0, 0)
    with pytest.raises(ValueError):
        pack_header(FrameKind.CONTROL, 0, 2**32, 0)


# ---- fuzz ----


def valid_frame_bytes(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return joined(encode_control_frame(rng.randbytes(rng.randint(0, 40))))
    return joined(encode_data_frame(rng.getrandbits(64), rng.randbytes(rng.randint(0, 80))))


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if choice < 0.5 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif choice < 0.7 and buf:
            del buf[rng.randrange(len(buf)) :]
        elif choice < 0.85:
            buf[rng.randrange(len(buf) + 1) : 0] = rng.randbytes(rng.randint(1, 8))
        else:
            # Aim at a header field: set a length or kind to an edge value.
            offset = rng.choice([4, 5, 6, 16, 20, 24])
            if offset + 4 <= len(buf):
                struct.pack_into("<I", buf, offset, rng.choice([0, 1, 2, 1024, 2**32 - 1]))
    return bytes(buf)


def check_decodes_cleanly(data: bytes, rng: random.Random) -> str:
    """Feed ``data`` in random pieces: only valid frames or a FramingError may come out."""
    decoder = FrameDecoder(SMALL)
    frames = 0
    try:
        pos = 0
        while pos < len(data):
            step = rng.randint(1, 50)
            for frame in decoder.feed(data[pos : pos + step]):
                assert frame.kind in (FrameKind.CONTROL, FrameKind.DATA)
                assert frame.body.size == 0 or frame.kind is FrameKind.DATA
                assert frame.metadata == b"" or frame.kind is FrameKind.CONTROL
                frames += 1
            pos += step
        decoder.close()
    except FramingError:
        return "error"
    return "frames" if frames else "empty"


def test_fuzz_random_and_mutated_frames() -> None:
    rng = random.Random(20240611)
    outcomes: dict[str, int] = {}
    for _ in range(1500):
        outcome = check_decodes_cleanly(rng.randbytes(rng.randint(0, 100)), rng)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    for _ in range(3000):
        frames = b"".join(valid_frame_bytes(rng) for _ in range(rng.randint(1, 3)))
        outcome = check_decodes_cleanly(mutate(frames, rng), rng)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    # The mutations must reach both sides: frames that still decode and frames that do not.
    assert outcomes.get("frames", 0) > 100 and outcomes.get("error", 0) > 1000, outcomes


def test_fuzz_read_frame_over_a_socket() -> None:
    rng = random.Random(99)
    for _ in range(300):
        data = mutate(b"".join(valid_frame_bytes(rng) for _ in range(2)), rng)
        left, right = socket.socketpair()
        with left, right:
            left.sendall(data)
            left.shutdown(socket.SHUT_WR)
            try:
                while read_frame(right, SMALL) is not None:
                    pass
            except FramingError:
                pass
