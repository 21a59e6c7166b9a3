"""The cost of `quiver run --log-dir` and `--progress json` (figures for docs/metrics.md).

    .venv/bin/python bench/logs_overhead.py [--repeats 5]

Interleaved runs (each round in another order) of the quiver binary
(build/cpp/quiver/cli/quiver, or $QUIVER_BINARY) on 2 workers, output discarded: the 2M-row
`identity` scenario (bench/data, 200-byte strings) plain, with --log-dir and with --progress
json; and a chatty UDF that prints 100 lines per batch of 1,000 rows (200,000 lines over 2M
int64 rows) without and with --log-dir. Prints the median wall
time of each and its difference to the plain run of its kind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
BINARY = Path(os.environ.get("QUIVER_BINARY", ROOT / "build/cpp/quiver/cli/quiver"))
IDENTITY = ROOT / "bench/data/identity-2m-200-scale1-v1.parquet"

CHATTY = """
import pyarrow as pa
import quiver

@quiver.udf(returns="int64")
def chatty(x: pa.Array) -> pa.Array:
    for i in range(100):
        print(f"line {i} of a batch starting at {x[0].as_py()}")
    return x
"""


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [str(BINARY), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, QUIVER_PYTHON=sys.executable),
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    work = Path(tempfile.mkdtemp(prefix="qv-logs-"))
    try:
        (work / "chatty.py").write_text(CHATTY)
        numbers = work / "numbers.parquet"
        pq.write_table(pa.table({"x": pa.array(range(2_000_000), pa.int64())}), numbers)
        identity = ["run", str(IDENTITY), "--udf", f"y={ROOT}/bench/udfs.py:identity(data)"]
        chatty = ["run", str(numbers), "--udf", f"y={work}/chatty.py:chatty(x)"]
        common = ["--workers", "2", "--output-format", "noop", "-q"]
        cases = {
            "identity": identity + common,
            "identity --log-dir": identity + common + ["--log-dir", str(work / "logs")],
            "identity --progress json": identity + common + ["--progress", "json"],
            "chatty": chatty + common + ["--batch-rows", "1000"],
            "chatty --log-dir": chatty
            + common
            + ["--batch-rows", "1000", "--log-dir"]
            + [str(work / "logs")],
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        timed(cases["identity"])  # warm the fork server and the page cache
        names = list(cases)
        for round_ in range(repeats):
            # Each round starts at another case: the first run of a round tends to be slower.
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                args = cases[name]
                shutil.rmtree(work / "logs", ignore_errors=True)
                times[name].append(timed(args))
        for name, measured in times.items():
            median = statistics.median(measured)
            base = statistics.median(times[name.split(" ")[0]])
            print(f"{name:28s} median {median:6.2f} s  ({(median / base - 1) * 100:+5.1f}%)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
