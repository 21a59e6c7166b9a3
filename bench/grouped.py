"""Grouped map: `quiver run --group-by k --apply` beside PySpark's `applyInPandas`, one run.

Both run the same pandas body (bench/grouped_udfs.py: subtract each group's mean) over the same
Parquet file (ROWS rows: k int64 with GROUPS distinct keys in random order, x double) and
discard the output (quiver `--output-format noop`, Spark's `noop` sink). Spark runs in
local[WORKERS] with one SparkSession for all runs; quiver with --workers WORKERS.

    .venv/bin/python bench/grouped.py [--rows 10000000] [--groups 100000] [--runs 3]
        [--python PY] [--baseline-python OTHER_PY]

Prints a Markdown table of median wall times (after --warmups untimed runs each) and the ratio.
--baseline-python adds a row: quiver again with its workers run by another Python (e.g. the
venv of an older checkout), to compare two worker versions in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def ensure_data(directory: Path, rows: int, groups: int) -> Path:
    """Write (once) the input: `rows` rows of a key of `groups` values and a double."""
    path = directory / f"grouped-{rows}-{groups}.parquet"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(20261130)
        table = pa.table(
            {
                "k": pa.array(rng.integers(0, groups, rows), pa.int64()),
                "x": pa.array(rng.random(rows)),
            }
        )
        pq.write_table(table, path.with_suffix(".tmp"), row_group_size=1 << 20)
        path.with_suffix(".tmp").rename(path)
    return path


def timed(run, runs: int, warmups: int = 1) -> list[float]:
    """`warmups` untimed runs, then `runs` timed runs; returns the times in seconds."""
    times = []
    for attempt in range(runs + warmups):
        start = time.perf_counter()
        run()
        if attempt >= warmups:
            times.append(time.perf_counter() - start)
        print(f"bench: run {attempt}: {time.perf_counter() - start:.2f} s", file=sys.stderr)
    return times


def quiver_runner(binary: str, data: Path, workers: int, python: str | None = None):
    """A run of quiver's grouped map (workers run by `python`, else quiver's default)."""
    command = [
        binary,
        "run",
        str(data),
        "--group-by",
        "k",
        "--apply",
        f"{ROOT / 'bench' / 'grouped_udfs.py'}:center",
        "--workers",
        str(workers),
        "--output-format",
        "noop",
        "-q",
        *(["--python", python] if python else []),
    ]
    return lambda: subprocess.run(command, check=True)


def spark_runner(data: Path, workers: int):
    """A run of PySpark's applyInPandas, on one SparkSession kept for every run."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # Spark's Python workers import the body by module name, as this process does.
    paths = [str(ROOT / "bench"), *filter(None, [os.environ.get("PYTHONPATH")])]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    from pyspark.sql import SparkSession

    from grouped_udfs import center_body

    spark = (
        SparkSession.builder.master(f"local[{workers}]")
        .appName("quiver-bench-grouped")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(max(2, workers * 2)))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    frame = spark.read.parquet(str(data))
    query = frame.groupBy("k").applyInPandas(center_body, schema="k long, x double")
    return lambda: query.write.format("noop").mode("overwrite").save(), spark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--warmups", type=int, default=1, help="untimed runs first (0 for the largest scales)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--quiver", default=str(ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver")
    )
    parser.add_argument("--python", help="Python that runs quiver's workers")
    parser.add_argument("--baseline-python", help="also time quiver with workers of this Python")
    args = parser.parse_args()
    data = ensure_data(ROOT / "bench" / "data", args.rows, args.groups)
    results = {}
    if args.baseline_python:
        results["quiver, baseline workers"] = timed(
            quiver_runner(args.quiver, data, args.workers, args.baseline_python),
            args.runs,
            args.warmups,
        )
    results["quiver `--group-by k --apply`"] = timed(
        quiver_runner(args.quiver, data, args.workers, args.python), args.runs, args.warmups
    )
    spark_run, spark = spark_runner(data, args.workers)
    try:
        results["PySpark `groupBy(k).applyInPandas`"] = timed(spark_run, args.runs, args.warmups)
    finally:
        spark.stop()
    print(
        f"\n{args.rows:,} rows, {args.groups:,} groups, {args.workers} workers "
        f"(Spark local[{args.workers}]), median of {args.runs} after {args.warmups} warm-up(s)\n"
    )
    print("| system | median wall time (s) | rows/s | runs (s) |")
    print("| --- | --- | --- | --- |")
    medians = {}
    for label, times in results.items():
        medians[label] = statistics.median(times)
        runs = ", ".join(f"{t:.1f}" for t in times)
        print(f"| {label} | {medians[label]:.2f} | {args.rows / medians[label]:,.0f} | {runs} |")
    spark_median = medians.pop("PySpark `groupBy(k).applyInPandas`")
    print()
    for label, median in medians.items():
        print(f"{label}: {spark_median / median:.1f}x faster than PySpark in this run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
