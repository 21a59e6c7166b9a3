"""`quiver.Session.map` over a file, beside `quiver run` on the same file.

Times, alternating, median of RUNS (after one warm-up of each): the command on the file, and one
warm Session handed (a) the path itself (the engine reads it with the command's own readers:
decode threads, read-ahead, no GIL), (b) a pyarrow Dataset of it (read in batches of about
4 MiB by pyarrow's scanner, its batches imported through the Arrow C stream). One worker, the
identity UDF (bench/udfs.py), the results discarded. Prints a Markdown table per file with
Session / CLI ratios (below 1: the Session is faster): the ratio of the medians, and the median
of each round's ratio (steadier when the machine's load drifts between rounds).

    .venv/bin/python bench/session_reader.py 5 bench/data/identity-2m-200-scale0.25-v1.parquet ...
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.dataset as ds

import quiver

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import udfs  # noqa: E402

QUIVER = os.environ.get("QUIVER_BINARY", str(BENCH_DIR.parent / "build/cpp/quiver/cli/quiver"))


def variants(session: quiver.Session, file: str) -> dict[str, Callable[[], None]]:
    """The ways to run the identity UDF over `file`, by name."""
    environment = dict(os.environ, PYTHONPATH=str(BENCH_DIR), QUIVER_PYTHON=sys.executable)
    call = quiver.call(udfs.identity, "data", name="result")

    def command() -> None:
        udf = f"result={BENCH_DIR / 'udfs.py'}:identity(data)"
        arguments = [QUIVER, "run", file, "--udf", udf, "--output-format", "noop", "--quiet"]
        subprocess.run(arguments, check=True, env=environment)

    def mapped(data: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _batch in session.map(data(), udfs=[call]):
                pass

        return run

    return {
        "quiver run": command,
        "Session(path)": mapped(lambda: file),
        "Session(dataset)": mapped(lambda: ds.dataset(file)),
    }


def measure(session: quiver.Session, file: str, runs: int) -> dict[str, list[float]]:
    """Each variant's times (ms), alternating, after a warm-up of each."""
    ways = variants(session, file)
    times: dict[str, list[float]] = {name: [] for name in ways}
    for run in ways.values():
        run()
    for _ in range(runs):
        for name, run in ways.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    runs, files = int(sys.argv[1]), sys.argv[2:]
    with quiver.Session(workers=1) as session:
        for file in files:
            times = measure(session, file, runs)
            cli = statistics.median(times["quiver run"])
            print(f"\n{Path(file).name}: median of {runs} alternating (ms), load average "
                  f"{os.getloadavg()[0]:.1f}\n")  # fmt: skip
            print("| variant | median | ÷ CLI | ÷ CLI per round | runs |")
            print("| --- | --- | --- | --- | --- |")
            for name, values in times.items():
                median = statistics.median(values)
                rounds = statistics.median(
                    [value / base for value, base in zip(values, times["quiver run"], strict=True)]
                )
                listed = ", ".join(f"{value:.0f}" for value in values)
                print(f"| {name} | {median:.0f} | {median / cli:.2f} | {rounds:.2f} | {listed} |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
