"""Runs one peer over several scenarios and writes its timings (started by bench/run.py).

Each peer runs in a process of its own, so that its memory can be measured and its crash
does not stop the harness. The peer is set up once; then, per scenario, it runs the
warm-ups and the timed runs, measuring wall time here, around each run. Results go to
--results as one JSON line per scenario; stderr carries "bench:" progress lines and
"bench-phase: SCENARIO" and "bench-phase-end: SCENARIO" around each scenario (the harness
files memory samples under it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import IO

from quiver_bench.runners import PEER_CLASSES, BasePeer, PeerOptions, Query, elapsed_ms
from quiver_bench.scenarios import PEERS, SCENARIOS, Scenario, pick


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Parse the command line bench/run.py builds."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peer", required=True)
    parser.add_argument(
        "--scenario", action="append", nargs=2, metavar=("KEY", "FILE"), required=True
    )
    parser.add_argument("--warmups", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--quiver", type=Path, required=True)
    parser.add_argument("--startup-file", type=Path, required=True)
    parser.add_argument("--input-mode-flag", action="store_true")
    parser.add_argument("--results", type=Path, required=True)
    return parser.parse_args(argv)


def progress(message: str) -> None:
    """Print a progress line the harness forwards to its own stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def timed_runs(query: Query, count: int, what: str) -> list[float]:
    """Run the query `count` times; return each run's wall time in ms."""
    times = []
    for index in range(count):
        start = time.perf_counter()
        query.run()
        times.append(round(elapsed_ms(start), 1))
        progress(f"{what} {index + 1}/{count}: {times[-1]:.0f} ms")
    return times


def measure(peer: BasePeer, scenario: Scenario, file: Path, warmups: int, runs: int) -> dict:
    """Run the warm-ups and the timed runs of one scenario."""
    label = f"{peer.options.peer.key} {scenario.key}"
    query = peer.query(scenario, file)
    return {
        "warmup_ms": timed_runs(query, warmups, f"{label} warm-up"),
        "times_ms": timed_runs(query, runs, f"{label} run"),
        "settings": query.settings,
    }


def error_of(exception: BaseException) -> dict:
    """Return the result of a scenario (or start-up) that raised."""
    traceback.print_exc()
    return {"error": f"{type(exception).__name__}: {exception}"}


def write_line(out: IO[str], record: dict) -> None:
    """Append one JSON record to the results file, flushed at once."""
    out.write(json.dumps(record) + "\n")
    out.flush()


def run_all(arguments: argparse.Namespace, out: IO[str]) -> int:
    """Set the peer up, run every scenario, tear it down; 1 when the start-up failed."""
    peer_config = pick(PEERS, arguments.peer, "peer")[0]
    options = PeerOptions(
        peer=peer_config,
        workers=peer_config.workers_or(arguments.workers),
        quiver_binary=arguments.quiver,
        startup_file=arguments.startup_file,
        input_mode_flag=arguments.input_mode_flag,
    )
    try:
        peer = PEER_CLASSES[options.peer.kind](options)
    except Exception as exception:  # noqa: BLE001 - a peer that cannot start is a result
        write_line(out, {"startup": error_of(exception)})
        return 1
    progress(f"{options.peer.key} start-up: {peer.startup_ms:.0f} ms")
    startup = {"startup_ms": round(peer.startup_ms, 1)}
    write_line(out, {"startup": startup | {"settings": peer.settings, "notes": peer.notes}})
    try:
        for key, file in arguments.scenario:
            print(f"bench-phase: {key}", file=sys.stderr, flush=True)
            scenario = pick(SCENARIOS, key, "scenario")[0]
            try:
                result = measure(peer, scenario, Path(file), arguments.warmups, arguments.runs)
            except Exception as exception:  # noqa: BLE001 - one scenario's failure is a result
                result = error_of(exception)
            print(f"bench-phase-end: {key}", file=sys.stderr, flush=True)
            write_line(out, {"scenario": key} | result)
    finally:
        peer.close()
    return 0


def main(argv: list[str]) -> int:
    """Measure; the results file gets one line per scenario."""
    arguments = parse_arguments(argv)
    with arguments.results.open("w") as out:
        return run_all(arguments, out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
