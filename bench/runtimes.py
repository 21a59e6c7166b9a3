"""`quiver run` on the seed's string identity scenario with identity UDFs of several runtimes.

Times the same identity over the same Parquet file run by the Python worker (the pandas body of
bench/udfs.py), the C++ example worker and, when built, the Rust example worker (`symbol`
identity), each alone and all in one run:

    .venv/bin/python bench/runtimes.py [--scale 0.1] [--runs 3] [--scenario identity-2m-200]

Prints a Markdown table of median wall times (one warm-up run first).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from quiver_bench.dataset import ensure_dataset  # noqa: E402
from quiver_bench.scenarios import SCENARIOS  # noqa: E402

CPP = ROOT / "build" / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker"
RUST = ROOT / "rust" / "target" / "release" / "examples" / "udfs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", default="identity-2m-200")
    parser.add_argument(
        "--quiver", default=str(ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver")
    )
    parser.add_argument("--cpp-worker", default=str(CPP))
    parser.add_argument("--rust-worker", default=str(RUST))
    args = parser.parse_args()
    scenario = next(s for s in SCENARIOS if s.key == args.scenario)
    data = ensure_dataset(ROOT / "bench" / "data", scenario, args.scale)
    python_udf = f"py:{ROOT / 'bench' / 'udfs.py'}:identity(data)"
    runtimes = ["--runtime", f"cc={args.cpp_worker}"]
    cases = {
        "Python (pandas identity)": [f"--udf=py_id={python_udf}"],
        "C++ (symbol identity)": [*runtimes, "--udf=cc_id=cc:identity(data)"],
    }
    rust = Path(args.rust_worker)
    if rust.is_file():
        runtimes += ["--runtime", f"rs={rust}"]
        cases["Rust (symbol identity)"] = [*runtimes, "--udf=rs_id=rs:identity(data)"]
    cases["all of them in one run"] = [
        *runtimes,
        f"--udf=py_id={python_udf}",
        "--udf=cc_id=cc:identity(data)",
        *(["--udf=rs_id=rs:identity(data)"] if rust.is_file() else []),
    ]
    rows = scenario.scaled_rows(args.scale)
    print(
        f"{scenario.label}, {rows:,} rows x {scenario.length} characters ({data.name}), "
        f"1 worker per runtime, median of {args.runs} after 1 warm-up\n"
    )
    print("| UDFs | wall time (s) | rows/s |")
    print("| --- | --- | --- |")
    for label, udfs in cases.items():
        command = [args.quiver, "run", str(data), *udfs, "--output-format", "noop", "-q"]
        times = []
        for attempt in range(args.runs + 1):
            start = time.perf_counter()
            subprocess.run(command, check=True)
            if attempt > 0:
                times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(f"| {label} | {median:.2f} | {rows / median:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
