"""Reading an Arrow IPC file and a CSV file with one decode thread against several.

The identity 1M×100 table (bench/quiver_bench's dataset) is written once as an Arrow IPC
file (uncompressed and LZ4, 65536-row batches) and as CSV; each is read alone by
quiver_bench_decode (quiver run's reader, batches dropped), then run (bench/udfs.py's
identity, `noop` output, the fork server warm), with QUIVER_DECODE_THREADS=1 and =N in turn,
A B A B ..., so that load on a shared machine falls on both alike. Reports median wall
time, the engine's CPU and peak RSS (bench/decode_threads.py's measures), the input read
per second of wall time, and the ratio of the medians. Writes decode-formats.json and
decode-formats.md into --out.

    .venv/bin/python bench/decode_formats.py --runs 5 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from decode_threads import medians, run_once
from quiver_bench.dataset import ensure_dataset
from quiver_bench.machine import describe_machine, machine_line
from quiver_bench.scenarios import SCENARIOS, pick

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


def write_inputs(parquet: Path) -> dict[str, Path]:
    """Write the table of `parquet` beside it as .arrow (plain and LZ4) and .csv, once."""
    files = {
        "arrow": parquet.with_suffix(".arrow"),
        "arrow-lz4": parquet.with_suffix(".lz4.arrow"),
        "csv": parquet.with_suffix(".csv"),
    }
    if all(path.exists() for path in files.values()):
        return files
    table = pq.read_table(parquet)
    for key, compression in (("arrow", None), ("arrow-lz4", "lz4")):
        options = pa.ipc.IpcWriteOptions(compression=compression)
        with pa.ipc.new_file(files[key], table.schema, options=options) as writer:
            writer.write_table(table, max_chunksize=65536)
    pacsv.write_csv(table, files["csv"])
    return files


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", default="identity-10m-100")
    parser.add_argument("--scale", type=float, default=0.1, help="0.1: 1M rows")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="decode threads of B (A has 1)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--quiver", type=Path, default=ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver"
    )
    parser.add_argument(
        "--decoder", type=Path, default=ROOT / "build" / "bench" / "quiver_bench_decode"
    )
    arguments = parser.parse_args()
    (scenario,) = pick(SCENARIOS, arguments.scenario, "scenario")
    files = write_inputs(ensure_dataset(arguments.data_dir, scenario, arguments.scale))
    spec = f"result={BENCH_DIR / 'udfs.py'}:{scenario.udf}({', '.join(scenario.arguments)})"
    results = {
        "machine": describe_machine(ROOT),
        "config": {key: str(value) for key, value in vars(arguments).items()},
        "load_average_before": os.getloadavg(),
        "inputs": [],
    }
    for key, file in files.items():
        run = [str(arguments.quiver), "run", str(file), "--udf", spec]
        run += ["--output-format", "noop", "--workers", str(arguments.workers), "--quiet"]
        # Decoding alone (the reader of quiver run, batches dropped), then the whole run.
        for what, command in (("decode", [str(arguments.decoder), str(file)]), ("run", run)):
            run_once(command, 1)  # warm-up: the fork server, the page cache
            one, many = [], []
            for _ in range(arguments.runs):
                one.append(run_once(command, 1))
                many.append(run_once(command, arguments.threads))
            mib = file.stat().st_size / 2**20
            entry = {"key": key, "what": what, "file_mib": round(mib, 1)}
            entry.update(one=medians(one), many=medians(many))
            for side in ("one", "many"):
                entry[side]["mib_per_s"] = round(mib / entry[side]["wall_s"], 1)
            entry["wall_ratio"] = round(entry["one"]["wall_s"] / entry["many"]["wall_s"], 2)
            entry["samples"] = {"one": one, "many": many}
            entry["load_average"] = os.getloadavg()
            results["inputs"].append(entry)
            print(f"{key} {what}: {entry['one']} vs {entry['many']}", file=sys.stderr)
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "decode-formats.json").write_text(json.dumps(results, indent=2) + "\n")
    (arguments.out / "decode-formats.md").write_text(markdown(results, arguments) + "\n")
    return 0


def markdown(results: dict, arguments: argparse.Namespace) -> str:
    """Return the results as a Markdown table."""
    n = arguments.threads
    lines = [
        f"# Arrow IPC and CSV decode threads: 1 vs {n} "
        f"({arguments.scenario} at scale {arguments.scale:g}, {arguments.workers} worker)",
        "",
        f"Median of {arguments.runs} runs each, alternating; wall s, input MiB per wall s, "
        "engine CPU s, engine peak RSS MiB.",
        "",
        f"| input | measure | MiB | wall 1 | wall {n} | 1 / {n} | MiB/s 1 | MiB/s {n} "
        f"| CPU 1 | CPU {n} | peak 1 | peak {n} | load avg |",
        "| --- " * 13 + "|",
    ]
    for entry in results["inputs"]:
        one, many = entry["one"], entry["many"]
        lines.append(
            f"| {entry['key']} | {entry['what']} | {entry['file_mib']:.0f} | {one['wall_s']:.2f} "
            f"| {many['wall_s']:.2f} | {entry['wall_ratio']:.2f}x "
            f"| {one['mib_per_s']:.0f} | {many['mib_per_s']:.0f} "
            f"| {one['engine_cpu_s']:.2f} | {many['engine_cpu_s']:.2f} "
            f"| {one['engine_peak_mib']:.0f} | {many['engine_peak_mib']:.0f} "
            f"| {entry['load_average'][0]:.1f} |"
        )
    lines += ["", f"Machine: {machine_line(results['machine'])}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
