"""Peak resident memory of `quiver run`'s engine and workers on large inputs.

Two inputs, each run with the default `--batch-bytes` (and, for comparison, a 64 MiB cap):

- the seed's largest scenario, 20M rows of 100-character strings (bench/data, the identity
  UDF of bench/run.py);
- 1 MB strings: `--rows` rows of 1,048,576 random characters each (incompressible, so the
  Parquet file is as large as its data), generated once into bench/data.

Memory is sampled every 50 ms from /proc (quiver_bench.rss: the engine, and its workers
whether the engine or the fork server started them). Output goes to `noop`, so the figures
are the engine's reading, batching and round trips, not a writer's buffers.

    .venv/bin/python bench/peak_memory.py [--out bench/results/memory]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from quiver_bench.dataset import ensure_dataset
from quiver_bench.rss import ProcessTreeSampler
from quiver_bench.scenarios import SCENARIOS

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
MIB = 1 << 20
CAPS = ("default", "64M")


def big_strings_file(data_dir: Path, rows: int) -> Path:
    """Write (once) `rows` rows of 1 MiB random strings, one row group per 16 rows."""
    path = data_dir / f"strings-1mib-{rows}.parquet"
    if path.exists():
        return path
    rng = np.random.default_rng(7)
    alphabet = np.frombuffer(
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", "u1"
    )
    schema = pa.schema([("id", pa.int64()), ("data", pa.string())])
    partial = path.with_suffix(".partial")
    with pq.ParquetWriter(partial, schema, compression="none") as writer:
        for start in range(0, rows, 16):
            count = min(16, rows - start)
            chars = alphabet[rng.integers(0, len(alphabet), count * MIB)]
            offsets = pa.array(np.arange(count + 1, dtype=np.int32) * MIB)
            strings = pa.StringArray.from_buffers(count, offsets.buffers()[1], pa.py_buffer(chars))
            ids = pa.array(range(start, start + count), pa.int64())
            writer.write_table(pa.table([ids, strings], schema=schema))
    partial.rename(path)
    return path


def measure(quiver: Path, source: Path, cap: str, workers: int) -> dict:
    """Run the identity UDF over `source`'s column `data`; return wall time and peak RSS
    (MiB)."""
    udf = f"result={BENCH_DIR / 'udfs.py'}:identity(data)"
    command = [str(quiver), "run", str(source), "--udf", udf, "--output-format", "noop"]
    command += ["--workers", str(workers), "--quiet"]
    if cap != "default":
        command += ["--batch-bytes", cap]
    started = time.perf_counter()
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    sampler = ProcessTreeSampler(process.pid, "engine").start()
    _, stderr = process.communicate()
    peaks = sampler.stop().megabytes()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr}")
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "engine_mib": peaks["engine"],
        "workers_mib": peaks["workers"],
        "input_mib": round(source.stat().st_size / MIB, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500, help="rows of 1 MiB strings")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--quiver", type=Path, default=ROOT / "build/cpp/quiver/cli/quiver")
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "memory")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    largest = next(s for s in SCENARIOS if s.key == "identity-20m-100")
    inputs = {
        "20M rows x 100 characters": ensure_dataset(args.data_dir, largest, 1.0),
        f"{args.rows} rows x 1 MiB strings": big_strings_file(args.data_dir, args.rows),
    }
    results = []
    for label, source in inputs.items():
        for cap in CAPS:
            figures = measure(args.quiver, source, cap, args.workers)
            results.append({"input": label, "batch_bytes": cap, **figures})
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "| input | input MiB | `--batch-bytes` | wall (s) | engine peak RSS (MiB) "
        "| workers peak RSS (MiB) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['input']} | {r['input_mib']} | {r['batch_bytes']} | {r['seconds']} "
            f"| {r['engine_mib']} | {r['workers_mib']} |"
        )
    (args.out / "memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
