"""`quiver run` with one Parquet decode thread against several, on the seed scenarios.

Runs the same command (bench/udfs.py's UDF, `noop` output, the fork server warm) with
QUIVER_DECODE_THREADS=1 and =N in turn, A B A B ..., so that load on a shared machine falls
on both alike; reports the median wall time, the engine's CPU (its rusage: the fork
server's workers are not its children) and its own peak RSS (VmHWM, sampled every 20 ms),
the ratio of the medians, and the load average. Writes decode-threads.json and
decode-threads.md into --out.

    .venv/bin/python bench/decode_threads.py --scale 0.25 --runs 5 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from quiver_bench.dataset import ensure_dataset
from quiver_bench.machine import describe_machine, machine_line
from quiver_bench.scenarios import SCENARIOS, pick

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SEED_SCENARIOS = "concat-2m-200,identity-1m-1000,identity-2m-200,identity-10m-100,identity-20m-100"


def run_once(command: list[str], threads: int) -> dict:
    """Run `command` with `threads` decode threads; return wall s, engine CPU s, peak MiB."""
    environment = dict(os.environ, QUIVER_DECODE_THREADS=str(threads))
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")])
    )
    environment.setdefault("QUIVER_PYTHON", sys.executable)
    start = time.perf_counter()
    peak = PeakSampler()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment
    )
    sampler = threading.Thread(target=peak.run, args=(process.pid,), daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    peak.done.set()
    sampler.join()
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {stderr[-2000:]}")
    return {
        "wall_s": round(wall, 3),
        "engine_cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "engine_peak_mib": round(peak.mib, 1),
    }


class PeakSampler:
    """Follows the engine's own peak RSS (VmHWM) until it exits: rusage's ru_maxrss would
    also count the processes it started and waited for."""

    def __init__(self) -> None:
        self.mib = 0.0
        self.done = threading.Event()

    def run(self, pid: int) -> None:
        """Read /proc/PID/status every 20 ms; keep the last VmHWM seen."""
        while not self.done.is_set():
            try:
                with open(f"/proc/{pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            self.mib = max(self.mib, int(line.split()[1]) / 1024)
            except (OSError, ValueError):
                return
            time.sleep(0.02)


def medians(samples: list[dict]) -> dict:
    """Return the median of every figure of `samples`."""
    return {key: round(statistics.median(s[key] for s in samples), 3) for key in samples[0]}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="decode threads of B (A has 1)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scenarios", default=SEED_SCENARIOS)
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--quiver", type=Path, default=ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver"
    )
    arguments = parser.parse_args()
    results = {
        "machine": describe_machine(ROOT),
        "config": {key: str(value) for key, value in vars(arguments).items()},
        "load_average_before": os.getloadavg(),
        "scenarios": [],
    }
    for scenario in pick(SCENARIOS, arguments.scenarios, "scenario"):
        file = ensure_dataset(arguments.data_dir, scenario, arguments.scale)
        spec = f"result={BENCH_DIR / 'udfs.py'}:{scenario.udf}({', '.join(scenario.arguments)})"
        command = [
            str(arguments.quiver),
            "run",
            str(file),
            "--udf",
            spec,
            "--output-format",
            "noop",
        ]
        command += ["--workers", str(arguments.workers), "--quiet"]
        run_once(command, 1)  # warm-up: the fork server, the page cache
        one, many = [], []
        for _ in range(arguments.runs):
            one.append(run_once(command, 1))
            many.append(run_once(command, arguments.threads))
        entry = {"key": scenario.key, "one": medians(one), "many": medians(many)}
        entry["wall_ratio"] = round(entry["one"]["wall_s"] / entry["many"]["wall_s"], 2)
        entry["samples"] = {"one": one, "many": many}
        entry["load_average"] = os.getloadavg()
        results["scenarios"].append(entry)
        print(
            f"{scenario.key}: {entry['one']} vs {entry['many']} -> {entry['wall_ratio']}x",
            file=sys.stderr,
        )
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "decode-threads.json").write_text(json.dumps(results, indent=2) + "\n")
    (arguments.out / "decode-threads.md").write_text(markdown(results, arguments) + "\n")
    return 0


def markdown(results: dict, arguments: argparse.Namespace) -> str:
    """Return the results as a Markdown table."""
    n = arguments.threads
    lines = [
        f"# Parquet decode threads: 1 vs {n} "
        f"(scale {arguments.scale:g}, {arguments.workers} worker)",
        "",
        f"Median of {arguments.runs} runs each, alternating; "
        "wall s, engine CPU s, engine peak RSS MiB.",
        "",
        f"| scenario | wall 1 | wall {n} | 1 / {n} | CPU 1 | CPU {n} "
        f"| peak 1 | peak {n} | load avg |",
        "| --- " * 9 + "|",
    ]
    for entry in results["scenarios"]:
        one, many = entry["one"], entry["many"]
        lines.append(
            f"| {entry['key']} | {one['wall_s']:.2f} | {many['wall_s']:.2f} "
            f"| {entry['wall_ratio']:.2f}x "
            f"| {one['engine_cpu_s']:.2f} | {many['engine_cpu_s']:.2f} "
            f"| {one['engine_peak_mib']:.0f} | {many['engine_peak_mib']:.0f} "
            f"| {entry['load_average'][0]:.1f} |"
        )
    lines += ["", f"Machine: {machine_line(results['machine'])}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
