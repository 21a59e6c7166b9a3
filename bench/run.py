"""quiver's end-to-end benchmark: quiver beside PySpark, DuckDB, Polars and Daft, in one run.

Writes the seed's five tables and a CPU-bound one (a pure-Python normalisation of 1M
strings) as Parquet (cached under bench/data/), runs every peer on each with the same UDF
body (bench/udfs.py), 2 warm-ups then 5 timed runs, each peer in its own process, and
leaves results.json, results.md and results.png in bench/results/. The peers with "2" in
their key (quiver-2-workers, spark-2) run two workers whatever --workers says.

    .venv/bin/python bench/run.py                  # the seed's row counts (scale 1.0)
    .venv/bin/python bench/run.py --scale 0.1      # a tenth of the rows, a few minutes
    .venv/bin/python bench/run.py --peers quiver-columnar,duckdb --scenarios identity-2m-200
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

from quiver_bench.dataset import dataset_path, ensure_dataset, write_table
from quiver_bench.machine import describe_machine
from quiver_bench.orchestrate import PeerOutcome, PeerRequest, run_peer
from quiver_bench.ratios import compute_ratios
from quiver_bench.report import write_chart, write_markdown
from quiver_bench.scenarios import LARGEST_SCENARIO, PEERS, SCENARIOS, Peer, Scenario, pick

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DEFAULT_QUIVER = ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver"


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Parse the harness's command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the seed's rows")
    parser.add_argument("--warmups", type=int, default=2, help="untimed runs per peer")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per peer")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="quiver workers; Spark local[N]; DuckDB and Polars threads",
    )
    parser.add_argument(
        "--scenarios", help="comma-separated: " + ", ".join(s.key for s in SCENARIOS)
    )
    parser.add_argument("--peers", help="comma-separated: " + ", ".join(p.key for p in PEERS))
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="results folder")
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data", help="Parquet cache")
    parser.add_argument("--quiver", type=Path, default=DEFAULT_QUIVER, help="quiver binary")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per peer and scenario")
    parser.add_argument(
        "--memory-fraction",
        type=float,
        default=0.25,
        help=f"also measure quiver's memory on {LARGEST_SCENARIO} at this "
        "fraction of --scale (0: skip)",
    )
    arguments = parser.parse_args(argv)
    if arguments.scale <= 0 or arguments.runs < 1 or arguments.warmups < 0 or arguments.workers < 1:
        parser.error("--scale must be positive, --runs and --workers at least 1, --warmups >= 0")
    return arguments


def log(message: str) -> None:
    """Print a progress line on stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def has_input_mode_flag(quiver: Path) -> bool:
    """Tell whether `quiver run` has --input-mode (columnar vs rows)."""
    try:
        done = subprocess.run(
            [str(quiver), "run", "--help"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--input-mode" in done.stdout


def built_at(binary: Path) -> str:
    """Return when the binary was last written (a rebuild during a run shows here)."""
    if not binary.is_file():
        return "missing"
    stamp = datetime.datetime.fromtimestamp(binary.stat().st_mtime).astimezone()
    return stamp.isoformat(timespec="seconds")


def prepare_dataset(data_dir: Path, scenario: Scenario, scale: float) -> Path:
    """Return the scenario's Parquet file, writing it (and saying so) when not cached."""
    if not dataset_path(data_dir, scenario, scale).exists():
        log(f"writing {scenario.key} at scale {scale:g} ({scenario.scaled_rows(scale):,} rows)")
        start = time.perf_counter()
        ensure_dataset(data_dir, scenario, scale)
        log(f"  written in {time.perf_counter() - start:.1f} s")
    return dataset_path(data_dir, scenario, scale)


def startup_file(data_dir: Path) -> Path:
    """Return a one-row file of the same schema, for quiver's start-up run."""
    path = data_dir / "startup-1row.parquet"
    if not path.exists():
        write_table(path, 1, 10)
    return path


class Harness:
    """Runs the peers over the scenarios and keeps the results."""

    def __init__(self, arguments: argparse.Namespace) -> None:
        self.arguments = arguments
        self.scenarios: list[Scenario] = pick(SCENARIOS, arguments.scenarios, "scenario")
        self.peers: list[Peer] = pick(PEERS, arguments.peers, "peer")
        self.input_mode_flag = has_input_mode_flag(arguments.quiver)
        self.startup_file = startup_file(arguments.data_dir)
        self.files: dict[str, Path] = {}
        self.outcomes: dict[str, PeerOutcome] = {}
        self.results = {
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": describe_machine(ROOT),
            "config": self.config(),
            "peers": {},
            "scenarios": [],
        }

    def config(self) -> dict:
        """Return the settings of this run."""
        arguments = self.arguments
        return {
            "scale": arguments.scale,
            "warmups": arguments.warmups,
            "runs": arguments.runs,
            "workers": arguments.workers,
            "scenarios": [scenario.key for scenario in self.scenarios],
            "peers": [peer.key for peer in self.peers],
            "quiver_binary": str(arguments.quiver),
            "quiver_binary_built": built_at(arguments.quiver),
            "quiver_input_mode_flag": self.input_mode_flag,
            "command": " ".join(sys.argv),
        }

    def request(self, peer: Peer, scenarios: list, warmups: int, runs: int) -> PeerRequest:
        """Return the request that runs `peer` over `scenarios` ((scenario, file) pairs)."""
        arguments = self.arguments
        return PeerRequest(
            peer,
            scenarios,
            warmups,
            runs,
            arguments.workers,
            arguments.quiver,
            self.startup_file,
            self.input_mode_flag,
            arguments.timeout,
        )

    def cannot_run(self, peer: Peer) -> str:
        """Return why `peer` cannot run here, or "" when it can."""
        if peer.kind == "quiver-session" and importlib.util.find_spec("quiver._engine") is None:
            return "quiver._engine is not built (bash scripts/setup.sh)"
        if peer.kind == "quiver" and not self.arguments.quiver.is_file():
            return f"no quiver binary at {self.arguments.quiver}"
        if peer.kind == "quiver" and peer.mode == "rows" and not self.input_mode_flag:
            return "quiver run has no --input-mode flag yet"
        return ""

    def measure(self, peer: Peer) -> PeerOutcome:
        """Run one peer over every scenario, or record why it cannot run here."""
        reason = self.cannot_run(peer)
        if reason:
            log(f"{peer.key}: skipped ({reason})")
            skipped = {"error": reason, "skipped": True}
            return PeerOutcome(dict(skipped), {s.key: dict(skipped) for s in self.scenarios})
        log(f"{peer.key}: {len(self.scenarios)} scenarios")
        pairs = [(scenario, self.files[scenario.key]) for scenario in self.scenarios]
        outcome = run_peer(self.request(peer, pairs, self.arguments.warmups, self.arguments.runs))
        for key, result in outcome.scenarios.items():
            if "error" in result:
                log(f"  {peer.key} {key} failed: {result['error']}")
            else:
                rss = result.get("peak_rss_mb", {}).get("total", 0)
                log(f"  {peer.key} {key}: median {result['median_ms']:.0f} ms, peak {rss:.0f} MiB")
        return outcome

    def collect(self) -> None:
        """Lay the outcomes out per scenario, with the ratios, into the results."""
        scale = self.arguments.scale
        self.results["peers"] = {key: outcome.startup for key, outcome in self.outcomes.items()}
        self.results["scenarios"] = []
        for scenario in self.scenarios:
            file = self.files[scenario.key]
            peers = {peer.key: self.result_of(peer, scenario) for peer in self.peers}
            self.results["scenarios"].append(
                {
                    "key": scenario.key,
                    "label": scenario.label,
                    "rows": scenario.scaled_rows(scale),
                    "length": scenario.length,
                    "udf": f"{scenario.udf}({', '.join(scenario.arguments)})",
                    "file": str(file),
                    "file_mib": round(file.stat().st_size / (1 << 20), 1),
                    "peers": peers,
                    "ratios": compute_ratios(peers),
                }
            )

    def result_of(self, peer: Peer, scenario: Scenario) -> dict:
        """Return what `peer` measured on `scenario` so far."""
        outcome = self.outcomes.get(peer.key)
        if outcome is None:
            return {"error": "not run yet", "pending": True}
        return outcome.scenarios.get(scenario.key, {"error": "not run"})

    def memory_scaling(self) -> dict:
        """Peak RSS of quiver's engine and workers on the largest scenario at two scales."""
        fraction = self.arguments.memory_fraction
        outcome = self.outcomes.get("quiver-columnar")
        full = outcome.scenarios.get(LARGEST_SCENARIO) if outcome else None
        if fraction <= 0 or full is None or "error" in full:
            return {"note": f"not measured: needs quiver-columnar on {LARGEST_SCENARIO}"}
        scenario = pick(SCENARIOS, LARGEST_SCENARIO, "scenario")[0]
        small_scale = self.arguments.scale * fraction
        file = prepare_dataset(self.arguments.data_dir, scenario, small_scale)
        log(f"quiver-columnar: {scenario.key} at scale {small_scale:g} (memory)")
        peer = pick(PEERS, "quiver-columnar", "peer")[0]
        small = run_peer(self.request(peer, [(scenario, file)], 0, 1)).scenarios[scenario.key]
        points = [
            memory_point(small, small_scale, scenario, file),
            memory_point(full, self.arguments.scale, scenario, self.files[scenario.key]),
        ]
        return {"scenario": LARGEST_SCENARIO, "points": points}

    def write(self) -> None:
        """Write results.json, results.md and results.png into --out."""
        out = self.arguments.out
        out.mkdir(parents=True, exist_ok=True)
        self.collect()
        (out / "results.json").write_text(json.dumps(self.results, indent=2) + "\n")
        write_markdown(self.results, out / "results.md")
        write_chart(self.results, out / "results.png")

    def run(self) -> None:
        """Run everything; the files are rewritten after each peer."""
        start = time.perf_counter()
        for scenario in self.scenarios:
            self.files[scenario.key] = prepare_dataset(
                self.arguments.data_dir, scenario, self.arguments.scale
            )
        for index, peer in enumerate(self.peers, 1):
            log(f"[{index}/{len(self.peers)}] {peer.label}")
            self.outcomes[peer.key] = self.measure(peer)
            self.write()
        self.results["memory_scaling"] = self.memory_scaling()
        self.results["duration_s"] = round(time.perf_counter() - start, 1)
        if built_at(self.arguments.quiver) != self.results["config"]["quiver_binary_built"]:
            self.results["config"]["quiver_binary_rebuilt_during_run"] = True
            log("warning: the quiver binary was rebuilt during the run")
        self.write()
        log(f"done in {self.results['duration_s']:.0f} s: {self.arguments.out / 'results.md'}")


def memory_point(result: dict, scale: float, scenario: Scenario, file: Path) -> dict:
    """Return one row of the memory-vs-input-size table."""
    rss = result.get("peak_rss_mb", {})
    return {
        "scale": scale,
        "rows": scenario.scaled_rows(scale),
        "file_mib": round(file.stat().st_size / (1 << 20), 1),
        "engine_mb": rss.get("engine", 0.0),
        "workers_mb": rss.get("workers", 0.0),
        "error": result.get("error"),
    }


def main(argv: list[str]) -> int:
    """Run the benchmark."""
    arguments = parse_arguments(argv)
    try:
        harness = Harness(arguments)
    except ValueError as error:
        print(f"bench/run.py: {error}", file=sys.stderr)
        return 2
    harness.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
