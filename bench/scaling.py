"""Where quiver's CPU goes per MB, and what that predicts on larger machines.

Runs `quiver run` on the seed scenarios (Parquet from bench/data, the same UDF bodies as
bench/run.py, `noop` output) with `--workers 1` and `--workers 2`, and samples the CPU time
of every thread of the engine and of every worker from /proc every 20 ms. The engine's
threads are named: `quiver-read` reads and decodes the input file, `quiver-receive` decodes
and checks results (one per worker), the main thread builds argument batches and sends
them; the rest (Arrow's pools, output) is "other". CPU time, unlike wall time, is barely
moved by other load on the machine, so the figures hold on a shared machine.

A 1-row run's CPU (process and worker start-up, imports) is subtracted before dividing.
From the per-MB figures it predicts throughput at 8, 32 and 64 cores: the workers' work
spreads over the cores, and the reader's over its decode threads (the parallel Parquet
reader decodes up to 8 row groups at once, one thread each; every `quiver-read` thread
counts as the reader), so throughput is
min(cores / (engine + workers CPU per MB), min(8, cores, row groups) / reader CPU per MB).
Beside it, the single reader thread's ceiling (1 / reader CPU per MB) and the core count
where each reader becomes the bound. QUIVER_DECODE_THREADS sets the decode threads of the
measured runs (default: the cores the workers leave, here usually 1).

    .venv/bin/python bench/scaling.py --scale 0.25 --runs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from quiver_bench.dataset import ensure_dataset
from quiver_bench.scenarios import SCENARIOS, pick

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
TICKS = os.sysconf("SC_CLK_TCK")
THREAD_ROLES = {"quiver-read": "reader", "quiver-receive": "receive", "quiver": "main"}
CORE_COUNTS = (8, 32, 64)
# Most threads the parallel Parquet reader decodes on (kMaxDecodeThreads in the engine).
MAX_DECODE_THREADS = 8


def predict(cores: int, total: float, reader: float, row_groups: int) -> float:
    """Return MB/s at `cores`: CPU s per MB `total` spread over the cores, the reader's
    `reader` over its decode threads (at most 8, one row group each)."""
    decode_threads = max(1, min(MAX_DECODE_THREADS, cores, row_groups))
    return min(cores / total, decode_threads / reader)


def cpu_seconds(stat_path: str) -> tuple[str, float] | None:
    """Return (command name, user + system CPU seconds) from a /proc .../stat file."""
    try:
        with open(stat_path, "rb") as stat:
            text = stat.read().decode(errors="replace")
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def parent_of(pid: int) -> int:
    """Return the parent pid of `pid` (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode(errors="replace")
    except OSError:
        return 0
    return int(text[text.rindex(")") + 2 :].split()[1])


@dataclass
class CpuSampler:
    """Keeps the last CPU reading of every engine thread and of every worker process."""

    engine_pid: int
    threads: dict[int, tuple[str, float]] = field(default_factory=dict)
    workers: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """Sample until stop() (a thread's last 20 ms before it ends are not seen)."""
        while not self._stop.is_set():
            self.sample()
            time.sleep(0.02)

    def sample(self) -> None:
        """Read the engine's threads and the processes it started (or the fork server did)."""
        try:
            tids = os.listdir(f"/proc/{self.engine_pid}/task")
        except OSError:
            return
        for tid in tids:
            reading = cpu_seconds(f"/proc/{self.engine_pid}/task/{tid}/stat")
            if reading is not None:
                self.threads[int(tid)] = reading
        for entry in os.listdir("/proc"):
            if entry.isdigit() and self._is_worker(int(entry)):
                reading = cpu_seconds(f"/proc/{entry}/stat")
                if reading is not None:
                    self.workers[int(entry)] = reading[1]

    def _is_worker(self, pid: int) -> bool:
        if pid in self.workers:
            return True
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except OSError:
            return False
        # Workers the engine starts (--no-daemon) are its children; the fork server's
        # name the engine's private directory (quiver-PID-...) in their arguments.
        return parent_of(pid) == self.engine_pid or f"quiver-{self.engine_pid}-".encode() in command

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()

    def by_role(self) -> dict[str, float]:
        """Return CPU seconds per engine thread role, and the workers' total."""
        roles = {"reader": 0.0, "receive": 0.0, "main": 0.0, "other": 0.0}
        for name, seconds in self.threads.values():
            roles[THREAD_ROLES.get(name, "other")] += seconds
        roles["engine"] = sum(seconds for _, seconds in self.threads.values())
        roles["workers"] = sum(self.workers.values())
        return roles


def measure(command: list[str], environment: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Run `command`; return its wall seconds and CPU seconds by role.

    The engine's total comes from its rusage (its own CPU and that of the workers it
    reaped); the workers' from their last /proc sample; "other" is what the named
    threads' samples do not account for.
    """
    start = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr, env=environment
        )
        sampler = CpuSampler(process.pid)
        thread = threading.Thread(target=sampler.run, daemon=True)
        thread.start()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        sampler.stop()
        thread.join()
        if process.returncode != 0:
            stderr.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed:\n{stderr.read().decode()}")
    roles = sampler.by_role()
    roles["engine"] = max(0.0, usage.ru_utime + usage.ru_stime - roles["workers"])
    roles["other"] = max(0.0, roles["engine"] - roles["reader"] - roles["receive"] - roles["main"])
    return wall, roles


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=0.25, help="fraction of the seed's rows")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario and worker count")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--scenarios", help="comma-separated scenario keys (default: all)")
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    parser.add_argument(
        "--quiver", type=Path, default=ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver"
    )
    arguments = parser.parse_args()
    environment = dict(os.environ, QUIVER_NO_DAEMON="1")  # workers are the engine's children
    print(
        "| scenario | workers | Arrow MB | wall s | engine CPU ms/MB | reader | receive | main "
        "| other | workers CPU ms/MB | predicted MB/s at "
        + " / ".join(map(str, CORE_COUNTS))
        + " cores | one reader thread: MB/s, bound at | parallel reader bound at |"
    )
    print("| --- " * 13 + "|")
    startup_file = arguments.data_dir / "startup-1row.parquet"
    for scenario in pick(SCENARIOS, arguments.scenarios, "scenario"):
        file = ensure_dataset(arguments.data_dir, scenario, arguments.scale)
        # Per MB of the data as Arrow holds it (Parquet's uncompressed size), not of the file.
        metadata = pq.ParquetFile(file).metadata
        megabytes = sum(
            metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)
        )
        megabytes /= 1e6
        # A file of N row groups decodes on at most N threads: the model uses a file of
        # this scenario's row groups at scale 1 (the seed's row counts).
        row_groups = max(1, round(metadata.num_row_groups / arguments.scale))
        for workers in (int(w) for w in arguments.workers.split(",")):
            spec = f"result={BENCH_DIR / 'udfs.py'}:{scenario.udf}({', '.join(scenario.arguments)})"
            command = [str(arguments.quiver), "run", str(file), "--udf", spec]
            command += ["--output-format", "noop", "--workers", str(workers), "--quiet"]
            samples = [measure(command, environment) for _ in range(arguments.runs)]
            # What a 1-row run costs (process and worker start, imports) is not per MB.
            start_up_command = [*command[:2], str(startup_file), *command[3:]]
            start_up_samples = [
                measure(start_up_command, environment) for _ in range(arguments.runs)
            ]
            start_up = {
                k: statistics.median(s[1][k] for s in start_up_samples) for k in samples[0][1]
            }
            wall = statistics.median(s[0] for s in samples)
            role = {
                k: max(0.0, statistics.median(s[1][k] for s in samples) - start_up[k])
                for k in samples[0][1]
            }
            per_mb = {k: 1000 * v / megabytes for k, v in role.items()}
            total = (role["engine"] + role["workers"]) / megabytes  # CPU s per MB
            reader = max(role["reader"] / megabytes, 1e-9)
            predicted = [predict(cores, total, reader, row_groups) for cores in CORE_COUNTS]
            # One thread: the reader is the bound from total / reader cores on; eight:
            # from 8 x that (when the file has the row groups to keep them busy).
            bound_at = total / reader
            parallel_bound_at = min(MAX_DECODE_THREADS, row_groups) * bound_at
            print(
                f"| {scenario.key} | {workers} | {megabytes:.0f} | {wall:.2f} "
                f"| {per_mb['engine']:.1f} | {per_mb['reader']:.1f} | {per_mb['receive']:.1f} "
                f"| {per_mb['main']:.1f} | {per_mb['other']:.1f} | {per_mb['workers']:.1f} "
                f"| {' / '.join(f'{p:.0f}' for p in predicted)} "
                f"| {1 / reader:.0f}, {bound_at:.0f} cores | {parallel_bound_at:.0f} cores |",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
