"""The Python worker's 1-row round trip with its native batch loop on and off, in one run.

    .venv/bin/python bench/python_worker_native.py [--rows 20000] [--runs 5]

Runs `quiver run --batch-rows 1 --max-in-flight 1` (one batch on the wire at a time) over a
one-column int64 Parquet file of ROWS rows and of 1 row, with the Python worker (a pyarrow
identity) over `--transport uds` and `--transport shm`, once with the native batch loop
(quiver._worker_loop, the default) and once with `QUIVER_WORKER_NATIVE=0` (every batch in
Python), alternately so that both see the same machine load. The round trip per batch is
(median time of ROWS rows - median time of 1 row) / (ROWS - 1), in wall time and in the CPU
time of the engine and its worker together (their rusage; `QUIVER_NO_DAEMON=1` makes the worker
the engine's child). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transport_roundtrip import PY_UDF, QUIVER, per_batch_micros, write_inputs

MODES = {"native": "1", "python": "0"}


def run_once(args: argparse.Namespace, inputs: Path, udf: Path, transport: str, mode: str):
    """Return (seconds, CPU seconds of the children) of one `quiver run`."""
    command = [args.quiver, "run", str(inputs), "--udf", f"y={udf}:same(x)"]
    command += ["--transport", transport, "--batch-rows", "1", "--max-in-flight", "1"]
    command += ["--output-format", "noop", "-q"]
    env = dict(os.environ, QUIVER_WORKER_NATIVE=MODES[mode], QUIVER_NO_DAEMON="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quiver", default=str(QUIVER))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        udf = directory / "py_udf.py"
        udf.write_text(PY_UDF)
        files = write_inputs(directory, args.rows)
        times: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
        for _ in range(args.runs):
            for transport in ("uds", "shm"):
                for mode in MODES:
                    for rows, path in files.items():
                        key = (transport, mode, rows)
                        times.setdefault(key, []).append(run_once(args, path, udf, transport, mode))
        print(
            f"| transport | mode | µs/batch (wall) | µs/batch (engine + worker CPU) "
            f"| ({args.runs} runs, medians, {args.rows} rows) |"
        )
        print("| --- | --- | --- | --- | --- |")
        for transport in ("uds", "shm"):
            for mode in MODES:
                per = []
                for index in (0, 1):
                    many = statistics.median(t[index] for t in times[(transport, mode, args.rows)])
                    one = statistics.median(t[index] for t in times[(transport, mode, 1)])
                    per.append(per_batch_micros(many, one, args.rows))
                print(f"| {transport} | {mode} | {per[0]:.1f} | {per[1]:.1f} | |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
