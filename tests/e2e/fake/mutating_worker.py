"""A fake uds worker that answers the engine with mutated frames.

The engine starts it as `PYTHON -m quiver.worker --id ID --connection unix:PATH` (PYTHON is a
wrapper script that runs this file). It speaks the protocol with the quiver package's framing and
messages: Hello, InitResponse, one result per batch (every UDF returns its first argument),
FinishResponse, CancelResponse, Shutdown. Then, as $QUIVER_FAKE_SEED decides, it damages some of
what it sends: bit flips in an Arrow body, bodies cut short or extended, frame lengths that lie,
wrong sequence numbers, damaged control messages, results dropped or sent twice.

For every result it writes a line to $QUIVER_FAKE_LOG: the sequence and the values that a
reference reader (pyarrow, full validation) finds in the bytes it sent, or null when those bytes
hold no valid result. A run the engine finishes with exit 0 must have written exactly these.

$QUIVER_FAKE_MODE=bad-schema answers Init with a result schema that does not parse (nothing else
is damaged); $QUIVER_FAKE_MODE=oversized announces every result frame with a body just over the
engine's 2 GiB limit (and sends only the real, small body).
"""

from __future__ import annotations

import json
import os
import random
import socket
import struct
import sys

import pyarrow as pa

from quiver._proto import pb
from quiver.protocol.framing import HEADER_SIZE, encode_control_frame, encode_data_frame
from quiver.transport.uds import read_frame, send_frame


def take_secret() -> bytes:
    """Return the secret as the engine passes it (docs/protocol.md, section 1): from the pipe
    QUIVER_WORKER_SECRET_FD names, else from QUIVER_WORKER_SECRET."""
    fd_text = os.environ.pop("QUIVER_WORKER_SECRET_FD", None)
    if fd_text is not None:
        with os.fdopen(int(fd_text), "rb") as pipe:
            return pipe.read().strip()
    return os.environ.pop("QUIVER_WORKER_SECRET", "").encode()


BODY_MUTATIONS = ["flip", "flip", "flip", "truncate", "extend", "splice"]
FRAME_MUTATIONS = ["length_short", "length_long", "sequence", "header_flip", "drop", "twice"]
OVERSIZED_BODY = 2**31 + 4096  # the length an oversized result frame announces
IDLE_SECONDS = 1.5  # a worker whose engine went quiet (waiting on a lying frame) leaves


class FakeWorker:
    """Serves one connection, damaging frames as the seed says."""

    def __init__(self, sock: socket.socket, seed: int, mode: str, log_path: str | None) -> None:
        self.sock = sock
        self.random = random.Random(seed)
        self.mode = mode
        self.log = open(log_path, "a") if log_path else None  # noqa: SIM115
        self.result_name = "result"
        # Which replies to damage (0 = InitResponse, then results in order) and how.
        count = self.random.choice([1, 1, 2])
        self.plan = {self.random.randrange(0, 8): self.pick() for _ in range(count)}
        self.replies = 0

    def pick(self) -> str:
        """Return one mutation; body mutations are the likeliest."""
        if self.random.random() < 0.03:
            return "control_flip"
        pool = BODY_MUTATIONS * 2 + FRAME_MUTATIONS
        return self.random.choice(pool)

    # ---- serving ----

    def serve(self, worker_id: str) -> None:
        """Say Hello, then answer frames until the engine closes or says Shutdown."""
        secret = take_secret()
        hello = pb.Hello(protocol_version=1, worker_id=worker_id, secret=secret, runtime="fake")
        self.send_control(pb.WorkerMessage(hello=hello), damage=False)
        self.sock.settimeout(IDLE_SECONDS)
        while True:
            try:
                frame = read_frame(self.sock)
            except (OSError, ValueError):
                return
            if frame is None:
                return
            if not frame.is_control:
                self.on_batch(frame.sequence, frame.body)
                continue
            message = pb.EngineMessage()
            message.ParseFromString(frame.metadata)
            kind = message.WhichOneof("kind")
            if kind == "init":
                self.on_init(message.init)
            elif kind == "finish":
                self.send_control(pb.WorkerMessage(finish_response=pb.FinishResponse()))
            elif kind == "cancel":
                self.send_control(pb.WorkerMessage(cancel_response=pb.CancelResponse()), False)
            elif kind == "heartbeat":
                reply = pb.Heartbeat(nonce=message.heartbeat.nonce)
                self.send_control(pb.WorkerMessage(heartbeat=reply), damage=False)
            elif kind == "shutdown":
                self.send_control(pb.WorkerMessage(shutdown=message.shutdown), damage=False)
                return

    def on_init(self, init: pb.Init) -> None:
        """Answer with a result schema of one field per UDF, typed like its first argument."""
        inputs = pa.ipc.read_schema(pa.py_buffer(init.input_schema))
        fields = []
        for udf in init.udfs:
            fields.append(pa.field(udf.name, inputs.field(udf.argument_offsets[0]).type))
        self.result_name = fields[0].name
        schema = pa.schema(fields).serialize().to_pybytes()
        if self.mode == "bad-schema":
            schema = b"\xff\xff\xff\xff\x10\x00\x00\x00" + b"not a flatbuffer"
        response = pb.WorkerMessage(init_response=pb.InitResponse(result_schema=schema))
        self.send_control(response)

    def on_batch(self, sequence: int, body: pa.Buffer) -> None:
        """Return every UDF's first argument (the batch holds the arguments in UDF order)."""
        arguments = pa.ipc.open_stream(body).read_next_batch()
        result = pa.record_batch([arguments.column(0)], names=[self.result_name])
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, result.schema) as writer:
            writer.write_batch(result)
        self.send_result(sequence, sink.getvalue().to_pybytes())

    # ---- sending, with damage ----

    def next_mutation(self) -> str | None:
        """Return the mutation planned for the next reply, if any."""
        mutation = self.plan.get(self.replies) if self.mode == "mutate" else None
        self.replies += 1
        return mutation

    def send_control(self, message: pb.WorkerMessage, damage: bool = True) -> None:
        """Send a control frame; the planned reply may get its metadata bits flipped."""
        metadata = bytearray(message.SerializeToString())
        mutation = self.next_mutation() if damage else None
        if mutation is not None and metadata:
            for _ in range(self.random.randint(1, 4)):
                metadata[self.random.randrange(len(metadata))] ^= 1 << self.random.randrange(8)
        send_frame(self.sock, encode_control_frame(bytes(metadata)))

    def send_result(self, sequence: int, body: bytes) -> None:
        """Send a result frame, damaged as planned, and log what it holds."""
        mutation = self.next_mutation()
        data = bytearray(body)
        if mutation in ("flip", "control_flip"):
            for _ in range(self.random.choice([1, 1, 2, 3, 8])):
                data[self.random.randrange(len(data))] ^= 1 << self.random.randrange(8)
        elif mutation == "truncate":
            data = data[: self.random.randrange(len(data))]
        elif mutation == "extend":
            data += bytes(self.random.randrange(256) for _ in range(self.random.randint(1, 64)))
        elif mutation == "splice":
            start = self.random.randrange(len(data))
            data[start : start + 4] = struct.pack("<i", self.random.choice([-1, 0, 1 << 30, 7]))
        self.record(sequence, bytes(data), mutation)
        if mutation == "drop":
            return
        header, *rest = encode_data_frame(sequence, bytes(data))
        header = bytearray(header)
        if mutation == "length_short":
            struct.pack_into("<Q", header, 24, self.random.randrange(len(data)))
        elif mutation == "length_long":
            struct.pack_into("<Q", header, 24, len(data) + self.random.randint(1, 4096))
        elif mutation == "sequence":
            struct.pack_into("<Q", header, 8, sequence + self.random.choice([1, 2, -1 % 2**64]))
        elif mutation == "header_flip":
            header[self.random.randrange(HEADER_SIZE)] ^= 1 << self.random.randrange(8)
        if self.mode == "oversized":
            struct.pack_into("<Q", header, 24, OVERSIZED_BODY)
        send_frame(self.sock, [bytes(header), *rest])
        if mutation == "twice":
            send_frame(self.sock, encode_data_frame(sequence, bytes(data)))

    def record(self, sequence: int, data: bytes, mutation: str | None) -> None:
        """Log the values a reference reader finds in `data`, or null."""
        if self.log is None:
            return
        values = None
        if mutation not in FRAME_MUTATIONS:
            values = reference_values(data, self.result_name)
        self.log.write(json.dumps({"sequence": sequence, "mutation": mutation, "values": values}))
        self.log.write("\n")
        self.log.flush()


def reference_values(data: bytes, name: str) -> list | None:
    """Return the result column pyarrow reads from one IPC stream, if it is a valid result."""
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(data))
        batches = list(reader)
        if len(batches) != 1 or batches[0].schema.names != [name]:
            return None
        batches[0].validate(full=True)
        return batches[0].column(0).to_pylist()
    except (pa.ArrowException, ValueError, OSError):
        return None


def main(argv: list[str]) -> int:
    """Connect like quiver.worker and serve; exit 0 in every case the engine caused."""
    args = dict(
        zip(argv[::2], argv[1::2], strict=False)
    )  # "-m quiver.worker --id 1 --connection unix:..."
    path = args["--connection"].removeprefix("unix:")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    worker = FakeWorker(
        sock,
        int(os.environ.get("QUIVER_FAKE_SEED", "0")),
        os.environ.get("QUIVER_FAKE_MODE", "mutate"),
        os.environ.get("QUIVER_FAKE_LOG"),
    )
    try:
        worker.serve(args["--id"])
    except (BrokenPipeError, ConnectionResetError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
