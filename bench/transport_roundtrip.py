"""The per-batch round trip of each in-repo worker over uds and over shm, with 1-row batches.

    .venv/bin/python bench/transport_roundtrip.py [--rows 20000] [--runs 5]

Runs `quiver run --batch-rows 1 --max-in-flight 1` (one batch on the wire at a time: each batch
waits for the previous one's answer) over a one-column int64 Parquet file of ROWS rows and of
1 row, for the C++ and Rust example workers (`add_one`) and the Python worker (a pyarrow
identity), over `--transport uds` and `--transport shm`, alternately so that both see the same
machine load. The round trip per batch is (median time of ROWS rows - median time of 1 row) /
(ROWS - 1): the start of the run and of the worker cancel out. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
QUIVER = ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver"
CPP = ROOT / "build" / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker"
RUST = ROOT / "rust" / "target" / "release" / "examples" / "udfs"
PY_UDF = """import pyarrow as pa
import quiver

@quiver.udf(returns="int64")
def same(x: pa.Array) -> pa.Array:
    return x
"""


def workers(directory: Path) -> dict[str, list[str]]:
    """The workers to time: name -> the `quiver run` arguments that pick its UDF."""
    (directory / "py_udf.py").write_text(PY_UDF)
    found = {"python": ["--udf", f"y={directory / 'py_udf.py'}:same(x)"]}
    for name, binary in (("c++ sdk", CPP), ("rust sdk", RUST)):
        if binary.exists():
            found[name] = ["--runtime", f"w={binary}", "--udf", "y=w:add_one(x)"]
    return found


def write_inputs(directory: Path, rows: int) -> dict[int, Path]:
    """One-column int64 Parquet files of 1 row and of `rows` rows, by row count."""
    files = {}
    for count in (1, rows):
        files[count] = directory / f"rows-{count}.parquet"
        pq.write_table(pa.table({"x": pa.array(range(count), pa.int64())}), files[count])
    return files


def per_batch_micros(many: float, one: float, rows: int) -> float:
    """The round trip per batch: the run of `rows` 1-row batches less the run of one, in µs."""
    return (many - one) / (rows - 1) * 1e6


def run_once(quiver: str, inputs: Path, udf: list[str], transport: str) -> float:
    """Seconds one `quiver run` takes."""
    command = [quiver, "run", str(inputs), *udf, "--transport", transport]
    command += ["--batch-rows", "1", "--max-in-flight", "1", "--output-format", "noop", "-q"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quiver", default=str(QUIVER))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        files = write_inputs(directory, args.rows)
        print(f"| worker | uds µs/batch | shm µs/batch | shm/uds | ({args.runs} runs, medians) |")
        print("| --- | --- | --- | --- | --- |")
        for name, udf in workers(directory).items():
            times: dict[tuple[str, int], list[float]] = {}
            for _ in range(args.runs):
                for transport in ("uds", "shm"):
                    for rows, path in files.items():
                        key = (transport, rows)
                        times.setdefault(key, []).append(
                            run_once(args.quiver, path, udf, transport)
                        )
            per_batch = {
                transport: per_batch_micros(
                    statistics.median(times[(transport, args.rows)]),
                    statistics.median(times[(transport, 1)]),
                    args.rows,
                )
                for transport in ("uds", "shm")
            }
            ratio = per_batch["shm"] / per_batch["uds"]
            print(f"| {name} | {per_batch['uds']:.1f} | {per_batch['shm']:.1f} | {ratio:.2f} | |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
