"""`quiver.Session.map` fed by different readers of one Parquet file, beside `quiver run`.

The Session decodes nothing itself: it maps the batches of the reader it is handed. This
times, alternating, median of --runs: the command on the file, and one warm Session fed
(a) a pyarrow dataset scanner of 65536-row batches, (b) a scanner of about 4 MiB batches
(the command's own --batch-bytes rule), (c) the same without the scanner's threads, and
(d) ParquetFile.iter_batches of about 4 MiB batches.

    .venv/bin/python bench/session_reader.py bench/data/identity-2m-200-scale1-v1.parquet 3
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

import quiver

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import udfs  # noqa: E402

QUIVER = os.environ.get("QUIVER_BINARY", str(BENCH_DIR.parent / "build/cpp/quiver/cli/quiver"))


def rows_of_4_mib(file: str) -> int:
    """Return how many rows of `file` make about 4 MiB decoded (its first row group's sizes)."""
    group = pq.ParquetFile(file).metadata.row_group(0)
    row_bytes = sum(group.column(i).total_uncompressed_size for i in range(group.num_columns))
    return max(1, (4 << 20) // max(1, row_bytes // group.num_rows))


def main() -> int:
    file, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    environment = dict(os.environ, PYTHONPATH=str(BENCH_DIR), QUIVER_PYTHON=sys.executable)
    session = quiver.Session(workers=1)
    call = quiver.call(udfs.identity, "data", name="result")
    rows = rows_of_4_mib(file)

    def command() -> None:
        udf = f"result={BENCH_DIR / 'udfs.py'}:identity(data)"
        arguments = [QUIVER, "run", file, "--udf", udf, "--output-format", "noop", "--quiet"]
        subprocess.run(arguments, check=True, env=environment)

    def mapped(reader) -> callable:
        def run() -> None:
            for _batch in session.map(reader(), udfs=[call]):
                pass

        return run

    def iter_batches() -> pa.RecordBatchReader:
        parquet = pq.ParquetFile(file)
        return pa.RecordBatchReader.from_batches(
            parquet.schema_arrow, parquet.iter_batches(batch_size=rows)
        )

    variants = {
        "quiver run": command,
        "Session, scanner 65536 rows": mapped(
            lambda: ds.dataset(file).scanner(batch_size=65536).to_reader()
        ),
        f"Session, scanner {rows} rows (~4 MiB)": mapped(
            lambda: ds.dataset(file).scanner(batch_size=rows).to_reader()
        ),
        f"Session, scanner {rows} rows, no threads": mapped(
            lambda: ds.dataset(file).scanner(batch_size=rows, use_threads=False).to_reader()
        ),
        f"Session, iter_batches {rows} rows": mapped(iter_batches),
    }
    times: dict[str, list[float]] = {key: [] for key in variants}
    for run in variants.values():
        run()  # warm-up
    for _ in range(runs):
        for key, run in variants.items():
            start = time.perf_counter()
            run()
            times[key].append((time.perf_counter() - start) * 1000)
    print(f"{Path(file).name}, load average {os.getloadavg()[0]:.1f}, median of {runs} (ms):\n")
    print("| variant | median | runs |\n| --- | --- | --- |")
    for key, values in times.items():
        listed = ", ".join(f"{value:.0f}" for value in values)
        print(f"| {key} | {statistics.median(values):.0f} | {listed} |")
    session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
