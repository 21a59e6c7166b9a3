"""Where quiver's CPU goes per MB and per batch, and what that predicts on larger machines.

Runs `quiver run` on seed scenarios (Parquet from bench/data, the UDF bodies of bench/run.py,
`noop` output) in several configurations, and samples the CPU time of every thread of the
engine and of every worker from /proc every 20 ms. The engine's threads are named:
`quiver-read` reads and decodes the input (every decode thread of the parallel Parquet reader
has that name), `quiver-receive` decodes and checks results (one per worker), the main thread
builds argument batches and sends them; the rest (Arrow's pools, output) is "other". CPU time,
unlike wall time, is barely moved by other load on the machine, so the stage costs hold on a
shared machine. A 1-row run's CPU and wall time (process and worker start-up, imports) are
subtracted before dividing; MB are the Arrow bytes the workers were sent (`bytes_in` of
`--metrics`), batches the batches they answered.

A configuration is a worker count with options after slashes: `1`, `2`, `1/d2` (1 worker, 2
decode threads: QUIVER_DECODE_THREADS), `1/c1` (the whole run under `taskset -c 0`: one core),
`1/b1MiB` (`--batch-bytes 1MiB`). With two batch sizes for one worker, each stage's CPU is split
into a per-batch and a per-MB part (least squares over the runs).

The model. Each stage costs CPU seconds per MB: the reader r, the main (send) thread m, the
receive threads v, the rest of the engine o, the workers w; T = r + m + v + o + w. With C
cores, W workers and D decode threads, every stage runs at once (they are pipelined through
bounded queues), so throughput is the least of what each can do:

    X(C, W, D) = min(C / T, D / r, 1 / m, W / w, W / v)

C / T: all the CPU over all the cores; D / r: the reader's threads; 1 / m: the one main thread
(it copies every batch into the input arena over shm); W / w and W / v: a worker and its
receive thread are one thread each. The engine picks D = min(8, max(1, C - W))
(DecodeThreadsOfRun), and no more than the file has row groups (the seed's file at scale 1).
Predicted throughput at C cores is the best X over W = 1..C. Memory bandwidth is not in the
model: every MB is written and read a few times (decode, arena copies, validation).

It prints: the stage costs; each measured configuration's X (C = the cores it had) beside the
measured MB / (wall s - the 1-row run's wall s), median and fastest run (on a shared machine the
fastest is the one others' load slowed least), and the cores the run kept busy; X at 8, 32 and
64 cores, with the bounding stage (stages within 3% of the bound are named together:
`cores=reader`); the one-thread reader's ceiling 1 / r and the cores from which it bounds (T /
r); the 8-thread reader's ceiling and the cores from which it bounds (8 T / r); and the bound
at every core count from 1 to 128.

    .venv/bin/python bench/scaling.py --scale 1 --runs 5 --configs 1,2,1/d2,1/c1,1/b1MiB \\
        --scenarios identity-20m-100,identity-1m-1000
    .venv/bin/python bench/scaling.py --scale 0.25 --scenarios normalize-1m-100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from quiver_bench.dataset import CHUNK_BYTES, ensure_dataset  # noqa: E402
from quiver_bench.scenarios import SCENARIOS, pick  # noqa: E402

ROOT = BENCH_DIR.parent
TICKS = os.sysconf("SC_CLK_TCK")
THREAD_ROLES = {"quiver-read": "reader", "quiver-receive": "receive"}
STAGES = ("reader", "main", "receive", "other", "workers")
CORE_COUNTS = (8, 32, 64)
# Most threads the parallel Parquet reader decodes on (kMaxDecodeThreads in the engine).
MAX_DECODE_THREADS = 8


# ---------------------------------------------------------------------------------------------
# The model


def decode_threads_of(cores: int, workers: int, row_groups: int) -> int:
    """Return the decode threads the engine uses: the cores the workers leave, 1 to 8, and no
    more than the file has row groups (DecodeThreadsFor)."""
    return max(1, min(MAX_DECODE_THREADS, cores - workers, row_groups))


def bounds(
    cost: dict[str, float], cores: int, workers: int, decode_threads: int
) -> dict[str, float]:
    """Return MB/s each stage allows: `cost` is CPU s per MB by stage."""
    total = sum(cost[s] for s in STAGES)
    return {
        "cores": cores / total,
        "reader": decode_threads / max(cost["reader"], 1e-12),
        "main": 1 / max(cost["main"], 1e-12),
        "workers": workers / max(cost["workers"], 1e-12),
        "receive": workers / max(cost["receive"], 1e-12),
    }


def throughput(
    cost: dict[str, float], cores: int, workers: int, decode_threads: int
) -> tuple[float, str]:
    """Return (MB/s, the bounding stage) with this many cores, workers and decode threads;
    stages within 3% of the bound are named with it (`cores=reader`): the model cannot tell
    them apart."""
    allowed = bounds(cost, cores, workers, decode_threads)
    rate = min(allowed.values())
    stage = "=".join(s for s in allowed if allowed[s] <= rate * 1.03)
    return rate, stage


def best_throughput(cost: dict[str, float], cores: int, row_groups: int) -> tuple[float, str, int]:
    """Return (MB/s, bounding stage, workers) for the best worker count at `cores`."""
    best = (0.0, "", 0)
    for workers in range(1, cores + 1):
        rate, stage = throughput(
            cost, cores, workers, decode_threads_of(cores, workers, row_groups)
        )
        if rate > best[0]:
            best = (rate, stage, workers)
    return best


def bound_ranges(cost: dict[str, float], row_groups: int, most_cores: int = 128) -> str:
    """Say which stage bounds from 1 to `most_cores` cores: `1-2 reader, 3-12 cores, 13+ main`."""
    ranges: list[list] = []
    for cores in range(1, most_cores + 1):
        stage = best_throughput(cost, cores, row_groups)[1]
        if ranges and ranges[-1][2] == stage:
            ranges[-1][1] = cores
        else:
            ranges.append([cores, cores, stage])
    texts = []
    for first, last, stage in ranges:
        span = (
            f"{first}+"
            if last == most_cores
            else f"{first}"
            if first == last
            else f"{first}-{last}"
        )
        texts.append(f"{span} {stage}")
    return ", ".join(texts)


# ---------------------------------------------------------------------------------------------
# Measuring


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
        """Read the engine's threads and the worker processes it started."""
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
        # Workers the engine starts (QUIVER_NO_DAEMON=1) are its children.
        return pid in self.workers or parent_of(pid) == self.engine_pid

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()

    def by_role(self) -> dict[str, float]:
        """Return CPU seconds per engine thread role, and the workers' total."""
        roles = dict.fromkeys(STAGES, 0.0)
        for tid, (name, seconds) in self.threads.items():
            # The main thread (tid = pid) builds and sends the argument batches.
            role = "main" if tid == self.engine_pid else THREAD_ROLES.get(name, "other")
            roles[role] += seconds
        roles["workers"] = sum(self.workers.values())
        return roles


@dataclass(frozen=True)
class Config:
    """One way of running a scenario: workers, decode threads, one core or all, batch bytes."""

    text: str
    workers: int
    decode_threads: str | None = None
    one_core: bool = False
    batch_bytes: str | None = None

    @classmethod
    def parse(cls, text: str) -> Config:
        """Parse `W[/dN][/c1][/bSIZE]`."""
        workers, *options = text.split("/")
        decode, one_core, batch = None, False, None
        for option in options:
            if option.startswith("d"):
                decode = option[1:]
            elif option == "c1":
                one_core = True
            elif option.startswith("b"):
                batch = option[1:]
            else:
                raise SystemExit(f"unknown option {option!r} in configuration {text!r}")
        return cls(text, int(workers), decode, one_core, batch)

    def cores(self) -> int:
        """Return the cores this configuration's run may use."""
        return 1 if self.one_core else os.cpu_count() or 1

    def command(self, quiver: Path, file: Path, spec: str, metrics: Path) -> list[str]:
        """Return the `quiver run` command line."""
        command = [str(quiver), "run", str(file), "--udf", spec, "--output-format", "noop"]
        command += ["--workers", str(self.workers), "--quiet", "--metrics", str(metrics)]
        if self.batch_bytes:
            command += ["--batch-bytes", self.batch_bytes]
        return ["taskset", "-c", "0", *command] if self.one_core else command

    def environment(self) -> dict[str, str]:
        """Return the run's environment: workers are the engine's children (no fork server)."""
        environment = dict(os.environ, QUIVER_NO_DAEMON="1")
        if self.decode_threads:
            environment["QUIVER_DECODE_THREADS"] = self.decode_threads
        return environment


@dataclass
class Sample:
    """One run: wall seconds, CPU seconds by stage, Arrow MB and batches sent to workers."""

    wall: float
    cpu: dict[str, float]
    megabytes: float
    batches: int


def measure(command: list[str], environment: dict[str, str], metrics: Path) -> Sample:
    """Run `command`; return its wall time, CPU by stage and what it sent.

    The engine's total comes from its rusage (its own CPU and that of the workers it
    reaped); "other" is what the named threads' samples do not account for.
    """
    start = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr, env=environment
        )
        # Under taskset the engine is taskset's exec'd image: the same pid.
        sampler = CpuSampler(process.pid)
        thread = threading.Thread(target=sampler.run, daemon=True)
        thread.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        sampler.stop()
        thread.join()
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed:\n{stderr.read().decode()}")
    cpu = sampler.by_role()
    engine = max(0.0, usage.ru_utime + usage.ru_stime - cpu["workers"])
    cpu["other"] = max(0.0, engine - cpu["reader"] - cpu["receive"] - cpu["main"])
    report = json.loads(metrics.read_text())
    groups = report["groups"]
    megabytes = sum(g["bytes_in"] for g in groups) / 1e6
    return Sample(wall, cpu, megabytes, sum(g["batches"] for g in groups))


def median_sample(samples: list[Sample]) -> Sample:
    """Return the median of each figure of `samples`."""
    return Sample(
        statistics.median(s.wall for s in samples),
        {k: statistics.median(s.cpu[k] for s in samples) for k in STAGES},
        statistics.median(s.megabytes for s in samples),
        round(statistics.median(s.batches for s in samples)),
    )


def net_of_start_up(run: Sample, start_up: Sample) -> Sample:
    """Return `run` less what its 1-row run cost (start-up is not per MB)."""
    return Sample(
        max(1e-9, run.wall - start_up.wall),
        {k: max(0.0, run.cpu[k] - start_up.cpu[k]) for k in STAGES},
        run.megabytes,
        run.batches,
    )


def split_per_batch(points: list[Sample]) -> dict[str, tuple[float, float]]:
    """Fit CPU = a * batches + b * MB for each stage over runs of one scenario with different
    batch sizes; return (a in µs per batch, b in ms per MB)."""
    fitted = {}
    for stage in STAGES:
        # Least squares in two unknowns, no intercept (start-up is already taken off).
        sbb = sum(p.batches**2 for p in points)
        smm = sum(p.megabytes**2 for p in points)
        sbm = sum(p.batches * p.megabytes for p in points)
        sbc = sum(p.batches * p.cpu[stage] for p in points)
        smc = sum(p.megabytes * p.cpu[stage] for p in points)
        determinant = sbb * smm - sbm * sbm
        if abs(determinant) < 1e-12:
            continue
        per_batch = (sbc * smm - smc * sbm) / determinant
        per_mb = (sbb * smc - sbm * sbc) / determinant
        fitted[stage] = (per_batch * 1e6, per_mb * 1e3)
    return fitted


# ---------------------------------------------------------------------------------------------
# Printing


def print_stage_costs(rows: list[tuple[str, Config, Sample]]) -> None:
    """One row per scenario and configuration: CPU ms per MB by stage."""
    print("\n### Stage costs (CPU ms per MB of Arrow data sent to workers; start-up taken off)\n")
    print(
        "| scenario | config | MB | batches | wall s | reader | main (send) | receive | other "
        "| workers | total | workers µs/batch (all) |"
    )
    print("| --- " * 12 + "|")
    for key, config, net in rows:
        per_mb = {k: 1000 * v / net.megabytes for k, v in net.cpu.items()}
        total = sum(per_mb.values())
        per_batch = 1e6 * net.cpu["workers"] / max(1, net.batches)
        print(
            f"| {key} | {config.text} | {net.megabytes:.0f} | {net.batches} | {net.wall:.2f} | "
            + " | ".join(f"{per_mb[s]:.2f}" for s in STAGES)
            + f" | {total:.2f} | {per_batch:.0f} |"
        )


def print_batch_split(key: str, rows: list[tuple[str, Config, Sample]]) -> None:
    """Each stage's CPU as per batch + per MB, when one worker ran with two batch sizes."""
    alike = [
        (c, n)
        for k, c, n in rows
        if k == key and c.workers == 1 and not c.one_core and not c.decode_threads
    ]
    if len({n.batches for _, n in alike}) < 2:
        return
    names = ", ".join(c.text for c, _ in alike)
    print(f"\n{key}: CPU per batch and per MB, fitted over the configurations {names}:")
    for stage, (per_batch, per_mb) in split_per_batch([n for _, n in alike]).items():
        print(f"  {stage}: {per_batch:.0f} µs per batch + {per_mb:.2f} ms per MB")


def print_model_check(
    rows: list[tuple[str, Config, Sample]], costs: dict, groups: dict, best_walls: dict
) -> None:
    """The model's throughput for each measured configuration beside the measured one (the
    median run's and the fastest run's, start-up taken off: on a shared machine the fastest
    run is the one the others' load slowed least); cores used = CPU s / wall s."""
    print("\n### The model on this machine (C = the cores the run had)\n")
    print(
        "| scenario | config | C | W | D | predicted MB/s | bound | measured MB/s (median, best) "
        "| median ÷ predicted | best ÷ predicted | cores used |"
    )
    print("| --- " * 11 + "|")
    for key, config, net in rows:
        cores = config.cores()
        decode = (
            int(config.decode_threads)
            if config.decode_threads
            else decode_threads_of(cores, config.workers, groups[key])
        )
        rate, stage = throughput(costs[key], cores, config.workers, decode)
        measured = net.megabytes / net.wall
        best = net.megabytes / best_walls[(key, config.text)]
        used = sum(net.cpu.values()) / net.wall
        print(
            f"| {key} | {config.text} | {cores} | {config.workers} | {decode} | {rate:.0f} "
            f"| {stage} | {measured:.0f}, {best:.0f} | {measured / rate:.2f} | {best / rate:.2f} "
            f"| {used:.2f} |"
        )


def print_predictions(costs: dict, groups: dict) -> None:
    """Predicted throughput at 8/32/64 cores and where the reader bounds."""
    print("\n### Predicted throughput (best worker count W; bound in brackets)\n")
    header = " | ".join(f"{c} cores MB/s (W, bound)" for c in CORE_COUNTS)
    print(
        f"| scenario | {header} | one decode thread: ceiling MB/s, bound from | "
        "8 decode threads: ceiling MB/s, bound from | the bound, by cores |"
    )
    print("| --- " * (4 + len(CORE_COUNTS)) + "|")
    for key, cost in costs.items():
        total = sum(cost[s] for s in STAGES)
        cells = []
        for cores in CORE_COUNTS:
            rate, stage, workers = best_throughput(cost, cores, groups[key])
            cells.append(f"{rate:.0f} ({workers}, {stage})")
        most = min(MAX_DECODE_THREADS, groups[key])
        print(
            f"| {key} | {' | '.join(cells)} | {1 / cost['reader']:.0f}, "
            f"{total / cost['reader']:.1f} cores | {most / cost['reader']:.0f}, "
            f"{most * total / cost['reader']:.0f} cores | {bound_ranges(cost, groups[key])} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=0.25, help="fraction of the seed's rows")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario and config")
    parser.add_argument("--configs", default="1,2,1/c1", help="comma-separated configurations")
    parser.add_argument(
        "--model-config", default="1", help="the configuration whose stage costs feed the model"
    )
    parser.add_argument("--scenarios", help="comma-separated scenario keys (default: all)")
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    parser.add_argument(
        "--quiver", type=Path, default=ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver"
    )
    parser.add_argument("--json", type=Path, help="also write every sample here")
    arguments = parser.parse_args()
    configs = [Config.parse(text) for text in arguments.configs.split(",")]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"load average before: {load}; {os.cpu_count()} cores; {arguments.quiver}")
    startup_file = arguments.data_dir / "startup-1row.parquet"
    rows: list[tuple[str, Config, Sample]] = []
    costs: dict[str, dict[str, float]] = {}
    groups: dict[str, int] = {}
    dump: list[dict] = []
    best_walls: dict[tuple[str, str], float] = {}
    metrics = Path(tempfile.mkdtemp()) / "metrics.json"
    for scenario in pick(SCENARIOS, arguments.scenarios, "scenario"):
        file = ensure_dataset(arguments.data_dir, scenario, arguments.scale)
        # A file of N row groups decodes on at most N threads: the model uses the seed's file
        # at scale 1, whose row groups hold CHUNK_BYTES of `data` each.
        groups[scenario.key] = -(-scenario.rows * scenario.length // CHUNK_BYTES)
        spec = f"result={BENCH_DIR / 'udfs.py'}:{scenario.udf}({', '.join(scenario.arguments)})"
        samples: dict[str, list[Sample]] = {c.text: [] for c in configs}
        start_ups: dict[str, list[Sample]] = {c.text: [] for c in configs}
        for run in range(arguments.runs):
            # Configurations alternate within each round, every other round reversed.
            for config in configs if run % 2 == 0 else reversed(configs):
                environment = config.environment()
                command = config.command(arguments.quiver, file, spec, metrics)
                samples[config.text].append(measure(command, environment, metrics))
                start_up = config.command(arguments.quiver, startup_file, spec, metrics)
                start_ups[config.text].append(measure(start_up, environment, metrics))
                print(
                    f"{scenario.key} {config.text}: {samples[config.text][-1].wall:.2f} s",
                    file=sys.stderr,
                )
        for config in configs:
            net = net_of_start_up(
                median_sample(samples[config.text]), median_sample(start_ups[config.text])
            )
            rows.append((scenario.key, config, net))
            start_up_wall = statistics.median(s.wall for s in start_ups[config.text])
            fastest = min(s.wall for s in samples[config.text])
            best_walls[(scenario.key, config.text)] = max(1e-9, fastest - start_up_wall)
            dump.append(
                {
                    "scenario": scenario.key,
                    "config": config.text,
                    "runs": [s.__dict__ for s in samples[config.text]],
                    "start_up": [s.__dict__ for s in start_ups[config.text]],
                }
            )
            if config.text == arguments.model_config:
                costs[scenario.key] = {k: v / net.megabytes for k, v in net.cpu.items()}
        print_batch_split(scenario.key, rows)
    print_stage_costs(rows)
    print_model_check(rows, costs, groups, best_walls)
    print_predictions(costs, groups)
    print(f"\nload average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if arguments.json:
        arguments.json.write_text(json.dumps(dump, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
