"""Time from `quiver run` to its result on a 1-row file: through a warm fork server, and cold
(--no-daemon, every worker fork/exec'd and importing pyarrow and pandas itself).

    python bench/startup/startup.py [--runs N] [--quiver BINARY] [--out DIR]

Prints the median of N runs of each (alternating, so machine load hits both alike) and their
ratio, and writes startup.json and startup.md into --out (default bench/results/startup). It uses
a private fork-server directory of its own and stops its server at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
UDF = """
import pandas as pd
import quiver

@quiver.udf(returns="int64")
def plus_one(x: pd.Series) -> pd.Series:
    return x + 1
"""


def run_once(binary: Path, work: Path, env: dict[str, str], *extra: str) -> float:
    """Run the 1-row job once; return its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(
        [str(binary), "run", str(work / "one.parquet"), "--udf",
         f"y={work / 'udf.py'}:plus_one(x)", "-o", str(work / "out.parquet"), "--force", "-q",
         *extra],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--quiver", type=Path, default=ROOT / "build/cpp/quiver/cli/quiver")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/startup")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qv-startup-"))
    fork_dir = Path(tempfile.mkdtemp(prefix="qfs-"))
    pq.write_table(pa.table({"x": pa.array([1], pa.int64())}), work / "one.parquet")
    (work / "udf.py").write_text(UDF)
    env = dict(os.environ, QUIVER_PYTHON=sys.executable, QUIVER_FORKSERVER_DIR=str(fork_dir))
    env.pop("QUIVER_NO_DAEMON", None)
    run_once(args.quiver, work, env)  # starts the server
    deadline = time.monotonic() + 60
    while not list(fork_dir.glob("*.sock")) and time.monotonic() < deadline:
        time.sleep(0.1)
    warm, cold = [], []
    for _ in range(args.runs):
        warm.append(run_once(args.quiver, work, env))
        cold.append(run_once(args.quiver, work, env, "--no-daemon"))
    _stop_servers(fork_dir)
    shutil.rmtree(fork_dir, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    result = {
        "runs": args.runs,
        "warm_median_ms": statistics.median(warm) * 1e3,
        "cold_median_ms": statistics.median(cold) * 1e3,
        "warm_ms": [t * 1e3 for t in warm],
        "cold_ms": [t * 1e3 for t in cold],
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    result["speedup"] = result["cold_median_ms"] / result["warm_median_ms"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup.json").write_text(json.dumps(result, indent=2) + "\n")
    summary = (
        "| 1-row `quiver run` | median ms |\n|---|---|\n"
        f"| warm fork server | {result['warm_median_ms']:.0f} |\n"
        f"| --no-daemon (fork/exec) | {result['cold_median_ms']:.0f} |\n"
        f"| ratio | {result['speedup']:.1f}x |\n\n"
        f"{args.runs} alternating runs each; load average {result['load_average']:.1f} on "
        f"{result['cpus']} CPUs (absolute times are from a loaded machine).\n"
    )
    (args.out / "startup.md").write_text(summary)
    print(summary)
    return 0


def _stop_servers(directory: Path) -> None:
    """Stop the fork server this script started (found by its socket directory)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "quiver.forkserver" in cmdline and str(directory) in cmdline:
            os.kill(int(entry.name), signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main())
