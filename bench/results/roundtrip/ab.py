"""A/B of two `quiver` binaries on the 1-row round trip and on a large-batch run, alternated.

    .venv/bin/python bench/results/roundtrip/ab.py --a /tmp/quiver-old --b /tmp/quiver-new

For each worker of bench/transport_roundtrip.py (Python, C++ SDK, Rust SDK) and each transport
(uds, shm), times `quiver run --batch-rows 1 --max-in-flight 1` over ROWS rows and over 1 row with
binary A and binary B in turn, RUNS times; the round trip per batch is (median of ROWS rows -
median of 1 row) / (ROWS - 1), as transport_roundtrip.py computes it. Then times the identity
2M x 200 scale-1 file (Python worker, defaults, --workers 1 and 2) with A and B in turn. Prints
Markdown tables of medians and the load average before and after each table: the machine is
shared, so only the A/B ratio within one run means anything.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bench"))

import transport_roundtrip as roundtrip  # noqa: E402

LARGE = ROOT / "bench" / "data" / "identity-2m-200-scale1-v1.parquet"


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def stop_fork_servers() -> None:
    """A stale fork server would serve old worker code to the Python runs."""
    subprocess.run(["pkill", "-f", "quiver.forkserver"], check=False)


def round_trips(binaries: dict[str, str], rows: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        files = roundtrip.write_inputs(directory, rows)
        print(f"\n1-row round trip, µs per batch ({runs} runs each, medians; {load()})\n")
        print("| worker | transport | A | B | B/A |")
        print("| --- | --- | --- | --- | --- |")
        for name, udf in roundtrip.workers(directory).items():
            for transport in ("uds", "shm"):
                times: dict[tuple[str, int], list[float]] = {}
                for _ in range(runs):
                    for label, binary in binaries.items():
                        for count, path in files.items():
                            seconds = roundtrip.run_once(binary, path, udf, transport)
                            times.setdefault((label, count), []).append(seconds)
                micros = {
                    label: roundtrip.per_batch_micros(
                        statistics.median(times[(label, rows)]),
                        statistics.median(times[(label, 1)]),
                        rows,
                    )
                    for label in binaries
                }
                print(
                    f"| {name} | {transport} | {micros['A']:.1f} | {micros['B']:.1f} "
                    f"| {micros['B'] / micros['A']:.2f} |"
                )
                sys.stdout.flush()
        print(f"\n({load()})")


def large_batches(binaries: dict[str, str], runs: int) -> None:
    if not LARGE.exists():
        print(f"\n{LARGE} is missing: `bench/run.py --scale 1` writes it")
        return
    udf = f"result={ROOT / 'bench' / 'udfs.py'}:identity(data)"
    print(f"\nidentity 2M x 200 (scale 1), seconds ({runs} runs each, medians; {load()})\n")
    print("| workers | A | B | B/A |")
    print("| --- | --- | --- | --- |")
    for workers in (1, 2):
        times: dict[str, list[float]] = {label: [] for label in binaries}
        for _ in range(runs):
            for label, binary in binaries.items():
                command = [binary, "run", str(LARGE), "--udf", udf, "--output-format", "noop"]
                command += ["--workers", str(workers), "--quiet"]
                start = time.perf_counter()
                subprocess.run(command, check=True)
                times[label].append(time.perf_counter() - start)
        a, b = (statistics.median(times[label]) for label in ("A", "B"))
        print(f"| {workers} | {a:.3f} | {b:.3f} | {b / a:.2f} |")
        sys.stdout.flush()
    print(f"\n({load()})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="the binary before the change")
    parser.add_argument("--b", required=True, help="the binary after it")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--large-runs", type=int, default=3)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    binaries = {"A": args.a, "B": args.b}
    print(f"A = {args.a}\nB = {args.b}")
    stop_fork_servers()
    round_trips(binaries, args.rows, args.runs)
    if not args.skip_large:
        stop_fork_servers()
        large_batches(binaries, args.large_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
