"""How the Python worker puts a result into the shm output arena, before and after EncodedStream.

    .venv/bin/python bench/shm_result_write.py [--sizes 1,4,16] [--rounds 6]

"before": the result's buffers (``batch.serialize()`` up to batch_codec.COPY_LIMIT, else the
zero-copy stream writer of ``encode_batch``), then a Python copy of each into the arena, as
transport/shm.py did; "after": ``EncodedStream.write_into`` (Arrow's stream writer straight into
the arena). Each write goes to its own region of a 512 MiB mapping, cycling, so that neither
finds its target in the caches; the two alternate which goes first. Prints the median µs.
"""

from __future__ import annotations

import argparse
import mmap
import statistics
import time

import numpy as np
import pyarrow as pa

from quiver.worker.batch_codec import COPY_LIMIT, END_OF_STREAM, ResultEncoder, encode_batch

ARENA = 512 << 20
SOURCE = 128 << 20


def string_batches(size: int) -> list[pa.RecordBatch]:
    """Batches of 100-character strings, `size` bytes each, over 128 MiB of distinct memory."""
    rows = size // 104
    values = np.frombuffer(b"0123456789abcdef" * (SOURCE // 16), np.uint8)
    offsets = pa.py_buffer(np.arange(0, (rows + 1) * 100, 100, dtype=np.int32))
    batches = []
    for i in range(SOURCE // (rows * 100)):
        data = pa.py_buffer(values[i * rows * 100 : (i + 1) * rows * 100])
        column = pa.Array.from_buffers(pa.string(), rows, [None, offsets, data])
        batches.append(pa.record_batch([column], names=["r"]))
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16", help="MiB")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    arena = memoryview(mmap.mmap(-1, ARENA))
    arena[:] = bytes(ARENA)  # fault every page in first
    for mib in (int(s) for s in args.sizes.split(",")):
        size = mib << 20
        batches = string_batches(size)
        encoder = ResultEncoder(batches[0].schema)
        schema_message = batches[0].schema.serialize()

        def before(
            batch: pa.RecordBatch, position: int, schema_message: pa.Buffer = schema_message
        ) -> None:
            if batch.get_total_buffer_size() <= COPY_LIMIT:
                parts = [schema_message, batch.serialize(), END_OF_STREAM]
            else:
                parts = encode_batch(batch)
            for part in parts:
                view = memoryview(part).cast("B")
                arena[position : position + view.nbytes] = view
                position += view.nbytes

        def after(batch: pa.RecordBatch, position: int, encoder: ResultEncoder = encoder) -> None:
            encoded = encoder.encode(batch)
            encoded.write_into(arena[position : position + encoded.nbytes])

        times: dict[str, list[float]] = {"before": [], "after": []}
        slots, slot = ARENA // (size + 4096), 0
        for round_index in range(args.rounds):
            for i, batch in enumerate(batches):
                pair = [("before", before), ("after", after)]
                for name, write in pair if (i + round_index) % 2 == 0 else reversed(pair):
                    position = (slot % slots) * (size + 4096)
                    slot += 1
                    started = time.perf_counter()
                    write(batch, position)
                    times[name].append(time.perf_counter() - started)
        medians = {name: statistics.median(values) * 1e6 for name, values in times.items()}
        print(
            f"{mib} MiB: before {medians['before']:.0f} µs, after {medians['after']:.0f} µs "
            f"({medians['after'] / medians['before']:.2f}x, {len(times['before'])} writes each)"
        )


if __name__ == "__main__":
    main()
