"""Runs one peer over the scenarios in a process of its own and collects what it measured.

The harness starts bench/peer.py in a new session, samples the memory of its process tree
while it runs (filed under the scenario it announced last), forwards its "bench:" progress
lines to stderr, and turns a crash or a timeout into a result that says so. When the
process dies inside a scenario, that scenario gets the error and a new process runs the
scenarios left.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from quiver_bench.rss import ProcessTreeSampler, RssPeaks
from quiver_bench.runners import BENCH_DIR, environment_for
from quiver_bench.scenarios import Peer, Scenario

STDERR_TAIL_LINES = 40


@dataclass
class PeerRequest:
    """One peer over some scenarios (each with its file), and how to run it."""

    peer: Peer
    scenarios: list[tuple[Scenario, Path]]
    warmups: int
    runs: int
    workers: int
    quiver_binary: Path
    startup_file: Path
    input_mode_flag: bool
    timeout_s: float  # per scenario, and for the start-up


@dataclass
class PeerOutcome:
    """What a peer did: its start-up and overall memory, and one result per scenario."""

    startup: dict = field(default_factory=dict)
    scenarios: dict[str, dict] = field(default_factory=dict)


def peer_command(request: PeerRequest, scenarios: list, results: Path) -> list[str]:
    """Return the command line of bench/peer.py for `scenarios`."""
    command = [sys.executable, str(BENCH_DIR / "peer.py"), "--peer", request.peer.key]
    for scenario, file in scenarios:
        command += ["--scenario", scenario.key, str(file)]
    command += ["--warmups", str(request.warmups), "--runs", str(request.runs)]
    command += [
        "--workers",
        str(request.peer.workers_or(request.workers)),
        "--quiver",
        str(request.quiver_binary),
    ]
    command += ["--startup-file", str(request.startup_file), "--results", str(results)]
    if request.input_mode_flag:
        command.append("--input-mode-flag")
    return command


class StderrWatcher:
    """Reads a peer's stderr: forwards progress, follows phases, keeps the last other lines."""

    def __init__(self, stream: IO[str], sampler: ProcessTreeSampler) -> None:
        self.stream = stream
        self.sampler = sampler
        self.phase: str | None = None
        self.phase_started = time.monotonic()
        self.tail: collections.deque = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.thread = threading.Thread(target=self._read, name="peer-stderr")
        self.thread.start()

    def _read(self) -> None:
        for line in self.stream:
            if line.startswith("bench-phase-end: "):
                self.phase_started = time.monotonic()
                self.sampler.enter_phase(None)
            elif line.startswith("bench-phase: "):
                self.phase = line.split(":", 1)[1].strip()
                self.phase_started = time.monotonic()
                self.sampler.enter_phase(self.phase)
            elif line.startswith("bench: "):
                print(f"  {line[7:]}", end="", file=sys.stderr, flush=True)
            else:
                self.tail.append(line.rstrip("\n"))


def summarize(times_ms: list[float]) -> dict:
    """Return median, min and max of the timed runs."""
    return {
        "median_ms": round(statistics.median(times_ms), 1),
        "min_ms": min(times_ms),
        "max_ms": max(times_ms),
    }


def wait_or_kill(process: subprocess.Popen, watcher: StderrWatcher, timeout_s: float) -> str:
    """Wait for the peer's process; kill its process group when a phase outlasts the timeout.

    Returns "" when it exited cleanly, else how it ended.
    """
    while True:
        try:
            status = process.wait(timeout=0.5)
            return "" if status == 0 else f"peer process exited with status {status}"
        except subprocess.TimeoutExpired:
            if time.monotonic() - watcher.phase_started > timeout_s:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return f"timed out after {timeout_s:.0f} s"


def read_records(path: Path) -> list[dict]:
    """Return the JSON lines the peer wrote."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def with_memory(result: dict, peaks: RssPeaks | None) -> dict:
    """Add the peak RSS and the timing summary to one result."""
    if peaks is not None:
        result["peak_rss_mb"] = peaks.megabytes()
    if result.get("times_ms"):
        result.update(summarize(result["times_ms"]))
    return result


def run_process(request: PeerRequest, scenarios: list, outcome: PeerOutcome) -> list:
    """Run one peer process over `scenarios`; return the scenarios it did not get to."""
    with tempfile.TemporaryDirectory(prefix="quiver-bench-") as scratch:
        results = Path(scratch) / "results.jsonl"
        process = subprocess.Popen(
            peer_command(request, scenarios, results),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(
                os.environ,
                **environment_for(request.peer, request.peer.workers_or(request.workers)),
            ),
            cwd=scratch,
            start_new_session=True,
        )
        sampler = ProcessTreeSampler(process.pid, request.peer.root_role).start()
        watcher = StderrWatcher(process.stderr, sampler)
        ended = wait_or_kill(process, watcher, request.timeout_s)
        peaks = sampler.stop()
        watcher.thread.join()
        records = read_records(results)
    file_records(records, sampler, peaks, outcome)
    if not ended:
        return []
    return note_failure(ended, watcher, scenarios, outcome)


def file_records(records: list[dict], sampler, peaks: RssPeaks, outcome: PeerOutcome) -> None:
    """Put the peer's records into `outcome`, with the memory sampled during each."""
    for record in records:
        if "startup" in record:
            outcome.startup = record["startup"] | {"peak_rss_mb": peaks.megabytes()}
        else:
            key = record.pop("scenario")
            outcome.scenarios[key] = with_memory(record, sampler.by_phase.get(key))


def note_failure(ended: str, watcher: StderrWatcher, scenarios: list, outcome) -> list:
    """Record how the process ended against what it was doing; return the scenarios left."""
    error = {"error": ended, "stderr_tail": list(watcher.tail)}
    left = [(s, f) for s, f in scenarios if s.key not in outcome.scenarios]
    if watcher.phase is None:  # it died while starting up: no scenario can run
        outcome.startup = outcome.startup or error
        error["error"] = outcome.startup.get("error", ended)
        for scenario, _file in left:
            outcome.scenarios[scenario.key] = dict(error)
        return []
    if watcher.phase not in outcome.scenarios:
        outcome.scenarios[watcher.phase] = error
    return [(s, f) for s, f in left if s.key != watcher.phase]


def run_peer(request: PeerRequest) -> PeerOutcome:
    """Run the peer over every scenario of `request`, restarting it after a crash."""
    outcome = PeerOutcome()
    left = list(request.scenarios)
    while left:
        left = run_process(request, left, outcome)
    return outcome
