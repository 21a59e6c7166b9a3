"""`quiver run --transport shm` beside `--transport uds` on one of the seed's scenarios.

    .venv/bin/python bench/shm_compare.py [--scenario concat-2m-200] [--scale 1] [--runs 5]

Runs the scenario's `quiver run ... --output-format noop` alternately over uds and shm (so that
both see the same machine load), and writes the wall times, their medians and the shm/uds ratio
to bench/results/shm/e2e-SCENARIO-scaleS.{json,md}. The dataset is cached like bench/run.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from quiver_bench.dataset import ensure_dataset  # noqa: E402
from quiver_bench.scenarios import SCENARIOS, pick  # noqa: E402

TRANSPORTS = ("uds", "shm")


def main() -> None:
    """Run the comparison and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="concat-2m-200")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    parser.add_argument(
        "--quiver",
        type=Path,
        default=BENCH_DIR.parent / "build" / "cpp" / "quiver" / "cli" / "quiver",
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "shm")
    args = parser.parse_args()
    scenario = pick(SCENARIOS, args.scenario, "scenario")[0]
    file = ensure_dataset(args.data_dir, scenario, args.scale)
    spec = f"result={BENCH_DIR / 'udfs.py'}:{scenario.udf}({', '.join(scenario.arguments)})"
    env = dict(os.environ, QUIVER_PYTHON=os.environ.get("QUIVER_PYTHON", sys.executable))
    times: dict[str, list[float]] = {transport: [] for transport in TRANSPORTS}
    for run in range(args.runs + 1):  # the first round warms the page cache and is dropped
        for transport in TRANSPORTS:
            command = [str(args.quiver), "run", str(file), "--udf", spec, "--transport", transport]
            command += ["--output-format", "noop", "--workers", str(args.workers), "--quiet"]
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True)
            elapsed = (time.perf_counter() - start) * 1000
            if run > 0:
                times[transport].append(elapsed)
            print(f"{transport}: {elapsed:.0f} ms", file=sys.stderr)
    medians = {transport: statistics.median(values) for transport, values in times.items()}
    result = {
        "scenario": scenario.key,
        "scale": args.scale,
        "workers": args.workers,
        "runs_ms": times,
        "median_ms": medians,
        "shm_over_uds": medians["shm"] / medians["uds"],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"e2e-{scenario.key}-scale{args.scale:g}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# `quiver run` over shm and uds: {scenario.key}, scale {args.scale:g}",
        "",
        f"{result['machine']}, {args.workers} worker(s), {args.runs} alternating runs after one "
        f"warm-up round; {result['when']}. The machine was shared with other builds: compare the "
        "ratio, measured in the same run, rather than the absolute times.",
        "",
        "| transport | median (ms) | runs (ms) |",
        "| --- | --- | --- |",
    ]
    for transport in TRANSPORTS:
        runs = ", ".join(f"{value:.0f}" for value in times[transport])
        lines.append(f"| {transport} | {medians[transport]:.0f} | {runs} |")
    lines += ["", f"shm / uds wall time: **{result['shm_over_uds']:.2f}**", ""]
    (args.out / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
