"""`quiver run --transport shm` beside `--transport uds` on the seed's scenarios, one build or two;
with `--roundtrip`, the identity round trip of each worker against memcpy.

    .venv/bin/python bench/shm_compare.py [--scenarios concat-2m-200,identity-20m-100] [--scale 1]
        [--runs 5] [--baseline path/to/an/older/quiver]
    .venv/bin/python bench/shm_compare.py --roundtrip [--sizes 1,4,16,64] [--runs 5]

Runs each scenario's `quiver run ... --output-format noop` alternately over uds and shm (so that
both see the same machine load), with `--baseline` also alternately with a second build (A vs B in
one run), and writes the wall times, their medians, the speed of shm over uds (uds time / shm
time) and, with a baseline, the speed of this build over the baseline to
bench/results/shm/e2e-scaleS[-ab].{json,md}. The datasets are cached like bench/run.py's.

`--roundtrip` (bench/shm_roundtrip.py) times the identity round trip of the Python worker, the
C++ SDK's and the Rust SDK's example workers over shm and uds, with batches of 1, 4, 16 and
64 MiB, against memcpy of the same bytes, and says where a batch's CPU goes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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
SEED_SCENARIOS = "concat-2m-200,identity-1m-1000,identity-2m-200,identity-10m-100,identity-20m-100"


def run_once(
    quiver: Path, file: Path, spec: str, transport: str, workers: int
) -> tuple[float, float]:
    """Milliseconds one `quiver run` takes: wall time, and the engine's CPU time (user + system;
    the workers the fork server starts are not the engine's children and are not counted)."""
    command = [str(quiver), "run", str(file), "--udf", spec, "--transport", transport]
    command += ["--output-format", "noop", "--workers", str(workers), "--quiet"]
    env = dict(os.environ, QUIVER_PYTHON=os.environ.get("QUIVER_PYTHON", sys.executable))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def compare(args: argparse.Namespace, builds: dict[str, Path], key: str) -> dict:
    """Every build over both transports, alternating, for one scenario."""
    scenario = pick(SCENARIOS, key, "scenario")[0]
    file = ensure_dataset(args.data_dir, scenario, args.scale)
    spec = f"result={BENCH_DIR / 'udfs.py'}:{scenario.udf}({', '.join(scenario.arguments)})"
    times: dict[str, list[float]] = {f"{b} {t}": [] for b in builds for t in TRANSPORTS}
    cpu: dict[str, list[float]] = {name: [] for name in times}
    for run in range(args.runs + 1):  # the first round warms the page cache and is dropped
        # Every other round in the opposite order, so that no configuration always runs first.
        order = [(b, t) for b in builds for t in TRANSPORTS]
        for build, transport in order if run % 2 == 0 else reversed(order):
            elapsed, engine_cpu = run_once(builds[build], file, spec, transport, args.workers)
            if run > 0:
                times[f"{build} {transport}"].append(elapsed)
                cpu[f"{build} {transport}"].append(engine_cpu)
            print(f"{key} {build} {transport}: {elapsed:.0f} ms", file=sys.stderr)
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    speed = {b: medians[f"{b} uds"] / medians[f"{b} shm"] for b in builds}
    result = {
        "scenario": key,
        "runs_ms": times,
        "median_ms": medians,
        "engine_cpu_ms": cpu,
        "median_engine_cpu_ms": cpu_medians,
        "shm_speed_over_uds": speed,
    }
    if "baseline" in builds:
        result["shm_speed_over_baseline_shm"] = medians["baseline shm"] / medians["this shm"]
    return result


def markdown(report: dict) -> str:
    """The report as a Markdown table, one row per scenario."""
    builds = report["builds"]
    lines = [
        f"# `quiver run` over shm and uds, scale {report['scale']:g}",
        "",
        f"{report['machine']}, {report['workers']} worker(s), {report['runs']} alternating runs "
        "after one warm-up round, every other round in reverse order; "
        f"{report['when']}; load average before {report['load_before']}. Compare the ratios "
        "(same run), not the absolute times.",
        "",
    ]
    header = ["scenario"] + [f"{b} {t} (ms)" for b in builds for t in TRANSPORTS]
    header += [f"{b}: shm speed over uds" for b in builds]
    if "baseline" in builds:
        header.append("shm: this build's speed over the baseline")
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in report["scenarios"]:
        cells = [row["scenario"]]
        cells += [f"{row['median_ms'][f'{b} {t}']:.0f}" for b in builds for t in TRANSPORTS]
        cells += [f"{row['shm_speed_over_uds'][b]:.2f}x" for b in builds]
        if "baseline" in builds:
            cells.append(f"{row['shm_speed_over_baseline_shm']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Median engine CPU time (user + system, ms; the workers not counted):", ""]
    header = ["scenario"] + [f"{b} {t}" for b in builds for t in TRANSPORTS]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in report["scenarios"]:
        cells = [row["scenario"]]
        cells += [
            f"{row['median_engine_cpu_ms'][f'{b} {t}']:.0f}" for b in builds for t in TRANSPORTS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Every run (wall ms):", ""]
    for row in report["scenarios"]:
        for name, values in row["runs_ms"].items():
            lines.append(f"- {row['scenario']} {name}: {', '.join(f'{v:.0f}' for v in values)}")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the comparison and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=SEED_SCENARIOS, help="comma-separated")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    parser.add_argument(
        "--quiver",
        type=Path,
        default=BENCH_DIR.parent / "build" / "cpp" / "quiver" / "cli" / "quiver",
    )
    parser.add_argument("--baseline", type=Path, help="a second quiver build to compare with")
    parser.add_argument("--out", type=Path, help="default: bench/results/shm (shm-memcpy)")
    parser.add_argument("--tag", default="", help="--roundtrip: a suffix for the report's name")
    parser.add_argument(
        "--roundtrip", action="store_true", help="the round trip against memcpy (see above)"
    )
    parser.add_argument("--sizes", default="1,4,16,64", help="--roundtrip: batch MiB")
    parser.add_argument("--total-mib", type=int, default=512, help="--roundtrip: MiB per run")
    parser.add_argument("--workers-of", default="python,c++,rust", help="--roundtrip: workers")
    parser.add_argument("--transports", default="shm,uds", help="--roundtrip: transports")
    parser.add_argument("--python-native", default="", help="--roundtrip: QUIVER_WORKER_NATIVE")
    parser.add_argument(
        "--baseline-python", help="--roundtrip: also the Python worker this executable starts"
    )
    args = parser.parse_args()
    if args.roundtrip:
        from shm_roundtrip import run_roundtrip

        args.out = args.out or BENCH_DIR / "results" / "shm-memcpy"
        run_roundtrip(args)
        return
    args.out = args.out or BENCH_DIR / "results" / "shm"
    builds = {"this": args.quiver}
    if args.baseline is not None:
        builds["baseline"] = args.baseline
    report = {
        "scale": args.scale,
        "workers": args.workers,
        "runs": args.runs,
        "builds": list(builds),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_before": ", ".join(f"{v:.1f}" for v in os.getloadavg()),
    }
    report["scenarios"] = [compare(args, builds, key) for key in args.scenarios.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"e2e-scale{args.scale:g}" + ("-ab" if args.baseline is not None else "")
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (args.out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
