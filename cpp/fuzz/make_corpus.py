"""Write the seed corpus of every fuzz target into cpp/fuzz/corpus/TARGET/.

Each seed is a well-formed input of the kind the target parses, built with the quiver Python
package (the uds framing, the quiver.v1 messages) and pyarrow (IPC streams), so the fuzzer
starts from valid messages and mutates them. Run with the project environment:

    .venv/bin/python cpp/fuzz/make_corpus.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa

from quiver._proto import pb
from quiver.protocol.framing import encode_control_frame, encode_data_frame

CORPUS = Path(__file__).resolve().parent / "corpus"


def batches() -> list[pa.RecordBatch]:
    """Return small result batches of the types UDFs return."""
    strings = pa.array(["a", None, "déjà", ""])
    return [
        pa.record_batch({"x": pa.array([1, 2, None, 4], pa.int64())}),
        pa.record_batch({"s": strings, "f": pa.array([1.5, None, 0.0, -2.0])}),
        pa.record_batch({"d": strings.dictionary_encode()}),
        pa.record_batch(
            {
                "l": pa.array([[1], [], None, [2, 3]], pa.list_(pa.int32())),
                "st": pa.array([{"a": 1}, None, {"a": 2}, {"a": None}]),
            }
        ),
        pa.record_batch({"ls": pa.array(["x", "yy", None, "z"], pa.large_string())}),
        pa.record_batch({"b": pa.array([True, None, False, True])}),
    ]


def ipc_stream(batch: pa.RecordBatch) -> bytes:
    """Return one batch as a self-contained IPC stream (a Data body)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def joined(buffers: list) -> bytes:
    """Join frame buffers into bytes."""
    return b"".join(bytes(memoryview(b)) for b in buffers)


def control_messages() -> list[pb.WorkerMessage]:
    """Return one WorkerMessage of every kind the engine receives."""
    schema = pa.schema([("x", pa.int64()), ("s", pa.string())]).serialize().to_pybytes()
    return [
        pb.WorkerMessage(hello=pb.Hello(protocol_version=1, worker_id="1", secret=b"s" * 32)),
        pb.WorkerMessage(init_response=pb.InitResponse(result_schema=schema)),
        pb.WorkerMessage(
            error=pb.Error(
                sequence=3,
                has_sequence=True,
                user_error=pb.UserError(udf_name="f", message="boom", error_class="ValueError"),
            )
        ),
        pb.WorkerMessage(error=pb.Error(protocol_error=pb.ProtocolError(message="bad"))),
        pb.WorkerMessage(finish_response=pb.FinishResponse(metrics=pb.Metrics(batches=2))),
        pb.WorkerMessage(cancel_response=pb.CancelResponse()),
        pb.WorkerMessage(heartbeat=pb.Heartbeat(nonce=7)),
    ]


def seeds() -> dict[str, list[bytes]]:
    """Return the seeds of every target."""
    bodies = [ipc_stream(b) for b in batches()]
    controls = [m.SerializeToString() for m in control_messages()]
    frames = [joined(encode_data_frame(i + 1, body)) for i, body in enumerate(bodies)]
    frames += [joined(encode_control_frame(c)) for c in controls]
    envelopes = [
        pb.WorkerMessage(data=pb.Data(sequence=i + 1, arrow_ipc=body)).SerializeToString()
        for i, body in enumerate(bodies)
    ] + controls
    chunk_seeds = [bytes([seed]) for seed in (0, 1, 3, 17, 255)]
    return {
        # [chunking seed][frames...]: one frame, and a whole conversation.
        "frame_decoder_fuzz": [s + f for s, f in zip(chunk_seeds * 3, frames, strict=False)]
        + [b"\x05" + b"".join(frames)],
        # [chunking seed][op count][ops][bytes]
        "chunked_input_stream_fuzz": [
            bytes([seed, 8]) + bytes([0x21, 0x02, 0x45, 0x13, 0xFC, 0x03, 0x81, 0x42]) + body
            for seed, body in zip((0, 1, 7, 40, 200, 3), bodies, strict=False)
        ],
        # [path][IPC stream]: even = one buffer, odd = chunks.
        "result_batch_fuzz": [
            bytes([p]) + body for p, body in zip((0, 1, 2, 7, 64, 255), bodies, strict=False)
        ],
        "worker_message_fuzz": controls,
        "grpc_data_envelope_fuzz": [
            bytes([s]) + e for s, e in zip((0, 1, 9, 33, 250) * 3, envelopes, strict=False)
        ],
    }


def main() -> None:
    """Rewrite every corpus directory from scratch."""
    for target, inputs in seeds().items():
        directory = CORPUS / target
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for index, data in enumerate(inputs):
            (directory / f"seed-{index:02d}").write_bytes(data)
        print(f"{target}: {len(inputs)} seeds")


if __name__ == "__main__":
    main()
