"""What `quiver run --sandbox` costs: start-up and per batch, beside the unsandboxed runs.

    .venv/bin/python bench/sandbox_cost.py [--runs 5] [--batches 200]

Runs, interleaved so that every mode sees the same machine load, `quiver run` of a Python
identity UDF (and of the C++ example worker's identity, when built) over one row (start-up:
starting the worker, the whole run) and over BATCHES batches of 1000 rows (per batch: the
difference divided by BATCHES), in three modes: the fork server (the default), fork/exec
(`--no-daemon`, what a sandboxed run starts with) and `--sandbox`. Then a map of two Python
UDFs, both plain (`2 plain`) against one of them declared `@quiver.udf(sandbox=True)`
(`1 declared`: its own sandboxed workers beside the other's fork-server ones). Prints the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
QUIVER = Path(os.environ.get("QUIVER_BINARY", ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver"))
CPP_WORKER = ROOT / "build" / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker"
UDF = """
import pyarrow as pa
import quiver


@quiver.udf(returns="string")
def same(name: pa.Array) -> pa.Array:
    return name


@quiver.udf(returns="string", sandbox=True)
def boxed(name: pa.Array) -> pa.Array:
    return name
"""
MODES = {"fork server": [], "fork/exec": ["--no-daemon"], "sandbox": ["--sandbox"]}


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([str(QUIVER), *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"quiver {' '.join(args)} failed:\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=200)
    options = parser.parse_args()
    env = dict(os.environ, QUIVER_PYTHON=sys.executable)
    with tempfile.TemporaryDirectory(prefix="qv-sandbox-bench-") as folder:
        work = Path(folder)
        (work / "udfs.py").write_text(UDF)
        one = work / "one.parquet"
        many = work / "many.parquet"
        pq.write_table(pa.table({"name": ["x"]}), one)
        pq.write_table(pa.table({"name": [f"n{i}" for i in range(options.batches * 1000)]}), many)
        udfs = work / "udfs.py"
        runtimes = {"python": (["--udf", f"r={udfs}:same(name)"], MODES)}
        plain = ["--udf", f"a={udfs}:same(name)"]
        runtimes["2 plain"] = ([*plain, "--udf", f"b={udfs}:same(name)"], {"fork server": []})
        runtimes["1 declared"] = ([*plain, "--udf", f"b={udfs}:boxed(name)"], {"fork server": []})
        if CPP_WORKER.is_file():
            cpp = ["--runtime", f"cc={CPP_WORKER}", "--udf", "r=cc:identity(name)"]
            # The fork server forks Python workers only: a compiled one always starts by fork/exec.
            runtimes["c++"] = (cpp, {k: v for k, v in MODES.items() if k != "fork server"})
        times: dict[tuple[str, str, str], list[float]] = {}
        for _ in range(options.runs):
            for runtime, (udf_args, modes) in runtimes.items():
                for mode, flags in modes.items():
                    for size, source in (("start", one), ("batches", many)):
                        args = ["run", str(source), *udf_args, *flags, "--batch-rows", "1000"]
                        args += ["--output-format", "noop", "-q"]
                        times.setdefault((runtime, mode, size), []).append(timed(args, env))
    print(f"medians of {options.runs} runs; per batch over {options.batches} batches of 1000 rows")
    print(f"{'runtime':10} {'mode':12} {'start-up (ms)':>14} {'per batch (us)':>15}")
    for runtime, (_, modes) in runtimes.items():
        for mode in modes:
            start = statistics.median(times[(runtime, mode, "start")])
            whole = statistics.median(times[(runtime, mode, "batches")])
            per_batch = (whole - start) / options.batches
            print(f"{runtime:10} {mode:12} {start * 1e3:14.1f} {per_batch * 1e6:15.1f}")


if __name__ == "__main__":
    main()
