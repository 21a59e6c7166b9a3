"""The identity round trip of each in-repo worker over shm and uds, against memcpy.

    .venv/bin/python bench/shm_roundtrip.py [--sizes 1,4,16,64] [--runs 5] [--total-mib 512]
    (also: .venv/bin/python bench/shm_compare.py --roundtrip ...)

For each batch size S (MiB) it writes an uncompressed Arrow IPC file of one string column
(100-character values) cut into batches of S MiB of Arrow buffers, TOTAL MiB in all, and a file
of one such batch, and runs `quiver run FILE --batch-bytes S --output-format noop --workers 1`
with an identity UDF on the Python worker (`pa.Array` in and out: bench/micro/identity_udf.py),
the C++ SDK's example worker and the Rust SDK's (`identity`), over `--transport shm` and `uds`.
A batch's round trip is (wall of the file - wall of the 1-batch file) / (batches - 1): the start
of the run and of its worker cancel out. Its throughput, bytes counted once (as
quiver_bench_shm counts them), is set against memcpy of the same bytes timed in this process
(numpy, through 256 MiB arenas, larger than the caches) in the same rounds.

Where a batch's CPU goes comes from /proc, per thread (bench/scaling.py's sampler, the
1-batch run taken off): the engine's main thread (it copies each batch into the input arena
over shm and sends it), its receive thread (copy-out of the result over shm, then
`ValidateFull`), its reader thread (the IPC file: not part of a round trip) and the worker;
the worker's own split is its `--metrics` (codec: decode, validation and encoding; the UDF).
Beside the measured throughput it prints what the same CPU per batch gives when the round
trip's threads each have a core (the busiest of the engine's main thread, its receive thread
and the worker bounds) and on two cores (their sum over two): on a shared machine the wall time
says more about the others' load than about quiver.

`--baseline-python EXE` also times the Python worker started by EXE (`quiver run --python`; a
wrapper that runs another checkout's worker): A against B in the same rounds. Configurations
alternate within each round, every other round reversed; the medians are printed as Markdown
and written with every run to OUT/roundtrip[-TAG].{json,md} (OUT: bench/results/shm-memcpy).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from scaling import STAGES, measure  # noqa: E402

ROOT = BENCH_DIR.parent
QUIVER = ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver"
CPP = ROOT / "build" / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker"
RUST = ROOT / "rust" / "target" / "release" / "examples" / "udfs"
PYTHON_UDF = BENCH_DIR / "micro" / "identity_udf.py"
VALUE_LENGTH = 100
ARENA_BYTES = 256 << 20
MIB = 1 << 20


def worker_arguments(name: str, baseline_python: str | None = None) -> list[str]:
    """The `quiver run` arguments that run the identity UDF on worker `name` (`python-baseline`:
    the Python worker started by `baseline_python`, e.g. a wrapper running another checkout)."""
    if name == "python":
        return ["--udf", f"result={PYTHON_UDF}:identity(data)"]
    if name == "python-baseline":
        return ["--python", str(baseline_python), *worker_arguments("python")]
    binary = {"c++": CPP, "rust": RUST}[name]
    return ["--runtime", f"w={binary}", "--udf", "result=w:identity(data)"]


def write_input(path: Path, batch_bytes: int, batches: int) -> int:
    """Write `batches` batches of one string column, each at most `batch_bytes` of Arrow
    buffers (values and offsets); return the Arrow bytes of one batch."""
    rows = batch_bytes // (VALUE_LENGTH + 4)
    values = np.frombuffer(b"0123456789abcdef" * (rows * VALUE_LENGTH // 16 + 1), np.uint8)
    offsets = np.arange(0, (rows + 1) * VALUE_LENGTH, VALUE_LENGTH, dtype=np.int32)
    data = pa.Array.from_buffers(
        pa.string(),
        rows,
        [None, pa.py_buffer(offsets), pa.py_buffer(values[: rows * VALUE_LENGTH])],
    )
    batch = pa.record_batch([data], names=["data"])
    with pa.ipc.new_file(path, batch.schema) as writer:
        for _ in range(batches):
            writer.write_batch(batch)
    return batch.get_total_buffer_size()


def memcpy_seconds(batch_bytes: int, arenas: tuple[np.ndarray, np.ndarray]) -> float:
    """Return the median seconds of one memcpy of `batch_bytes`, cycling through the arenas."""
    source, destination = arenas
    spots = max(1, ARENA_BYTES // batch_bytes)
    times = []
    deadline = time.perf_counter() + 0.3
    index = 0
    while time.perf_counter() < deadline or len(times) < 5:
        offset = (index % spots) * batch_bytes
        started = time.perf_counter()
        np.copyto(destination[offset : offset + batch_bytes], source[offset : offset + batch_bytes])
        times.append(time.perf_counter() - started)
        index += 1
    return statistics.median(times)


def run_once(
    args: argparse.Namespace, file: Path, worker: str, transport: str, batch_bytes: int
) -> dict:
    """Run `quiver run` once; return its wall, CPU by stage and the worker's metrics."""
    metrics = Path(args.scratch) / "metrics.json"
    command = [str(args.quiver), "run", str(file), *worker_arguments(worker, args.baseline_python)]
    command += ["--transport", transport, "--output-format", "noop", "--workers", "1"]
    command += ["--batch-rows", str(1 << 30), "--batch-bytes", str(batch_bytes)]
    command += ["--quiet", "--metrics", str(metrics)]
    environment = dict(os.environ, QUIVER_NO_DAEMON="1")
    if args.python_native:
        environment["QUIVER_WORKER_NATIVE"] = args.python_native
    sample = measure(command, environment, metrics)
    group = json.loads(metrics.read_text())["groups"][0]
    return {
        "wall": sample.wall,
        "cpu": sample.cpu,
        "batches": sample.batches,
        "codec": group["codec_nanos"] / 1e9,
        "udf": group["udf_nanos"] / 1e9,
    }


def per_batch(many: list[dict], one: list[dict], key: str, stage: str | None = None) -> float:
    """Median of `key` (or CPU `stage`) over the many-batch runs less the 1-batch runs, per
    batch beyond the first."""

    def value(run: dict) -> float:
        return run["cpu"][stage] if stage else run[key]

    batches = statistics.median(r["batches"] for r in many)
    net = statistics.median(value(r) for r in many) - statistics.median(value(r) for r in one)
    return net / max(1, batches - 1)


def summarize(report: dict) -> str:
    """The medians as Markdown: throughput against memcpy, then where a batch's CPU goes."""
    lines = [
        "# The identity round trip against memcpy, per worker and transport",
        "",
        f"{report['machine']}; {report['when']}; quiver {report['quiver']}; "
        f"{report['runs']} alternating rounds, medians; load average before "
        f"{report['load_before']}, after {report['load_after']}. Round trip = (wall of "
        f"{report['total_mib']} MiB - wall of 1 batch) / (batches - 1), bytes counted once.",
        "",
        "Measured: the wall time on this (shared) machine. Pipelined: what the same CPU per "
        "batch gives when each of the round trip's threads has a core of its own, the busiest "
        "of the engine's main thread, its receive thread and the worker bounding; on two cores: "
        "their sum (and the rest of the engine's) over two.",
        "",
        "| batch | worker | transport | round trip ms | GB/s | memcpy GB/s | ÷ memcpy "
        "| pipelined GB/s | ÷ memcpy | 2 cores GB/s | ÷ memcpy |",
        "| --- " * 11 + "|",
    ]
    for row in report["rows"]:
        cpu = row["cpu_us"]
        busiest = max(cpu["main"], cpu["receive"], cpu["workers"])
        two = (cpu["main"] + cpu["receive"] + cpu["workers"] + cpu["other"]) / 2
        pipelined = row["batch_bytes"] / busiest / 1e3
        on_two = row["batch_bytes"] / two / 1e3
        memcpy = row["memcpy_gbps"]
        lines.append(
            f"| {row['mib']} MiB | {row['worker']} | {row['transport']} "
            f"| {row['roundtrip_s'] * 1e3:.2f} | {row['gbps']:.2f} | {memcpy:.2f} "
            f"| {row['ratio']:.2f} | {pipelined:.2f} | {pipelined / memcpy:.2f} "
            f"| {on_two:.2f} | {on_two / memcpy:.2f} |"
        )
    lines += [
        "",
        "CPU per batch (µs; /proc per thread, 1-batch run taken off). Engine main: copies the "
        "batch into the input arena (shm) and sends it; receive: copy-out (shm) and ValidateFull "
        "of the result; reader: the IPC file's read and validation (not part of the round "
        "trip). Worker codec: decode, full validation, encoding (and over shm the copy into the "
        "output arena, Python: not in codec); rest: framing, the loop, system calls.",
        "",
        "| batch | worker | transport | engine main | receive | reader | other | worker "
        "| worker codec | worker UDF | worker rest |",
        "| --- " * 11 + "|",
    ]
    for row in report["rows"]:
        cpu = row["cpu_us"]
        rest = cpu["workers"] - row["codec_us"] - row["udf_us"]
        lines.append(
            f"| {row['mib']} MiB | {row['worker']} | {row['transport']} | {cpu['main']:.0f} "
            f"| {cpu['receive']:.0f} | {cpu['reader']:.0f} | {cpu['other']:.0f} "
            f"| {cpu['workers']:.0f} | {row['codec_us']:.0f} | {row['udf_us']:.0f} "
            f"| {rest:.0f} |"
        )
    return "\n".join(lines) + "\n"


def run_roundtrip(args: argparse.Namespace) -> None:
    """Run every configuration alternately and write the report."""
    with tempfile.TemporaryDirectory(prefix="quiver-roundtrip-") as scratch:
        args.scratch = scratch
        report = measure_all(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "roundtrip" + (f"-{args.tag}" if getattr(args, "tag", "") else "")
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    text = summarize(report)
    (args.out / f"{stem}.md").write_text(text)
    print(text)


def measure_all(args: argparse.Namespace) -> dict:
    """Write the inputs into args.scratch, run every configuration, return the report."""
    binaries = {"python": Path(sys.executable), "c++": CPP, "rust": RUST}
    workers = [w for w in args.workers_of.split(",") if binaries[w].exists()]
    if args.baseline_python:
        workers.insert(1, "python-baseline")
    sizes = [int(s) for s in args.sizes.split(",")]
    files = {}
    for mib in sizes:
        many = Path(args.scratch) / f"batches-{mib}mib.arrow"
        one = Path(args.scratch) / f"batch-{mib}mib.arrow"
        batch_bytes = write_input(many, mib * MIB, max(8, args.total_mib // mib))
        write_input(one, mib * MIB, 1)
        files[mib] = (many, one, batch_bytes)
    arenas = (np.full(ARENA_BYTES, 97, np.uint8), np.full(ARENA_BYTES, 98, np.uint8))
    transports = getattr(args, "transports", "shm,uds").split(",")
    configs = [(w, t) for w in workers for t in transports]
    runs: dict = {(m, w, t): {"many": [], "one": []} for m in sizes for w, t in configs}
    copies: dict[int, list[float]] = {m: [] for m in sizes}
    load_before = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    for round_index in range(args.runs + 1):  # the first round warms the page cache: dropped
        order = configs if round_index % 2 == 0 else list(reversed(configs))
        for mib in sizes:
            many, one, batch_bytes = files[mib]
            copy = memcpy_seconds(batch_bytes, arenas)
            for worker, transport in order:
                limit = mib * MIB
                got_many = run_once(args, many, worker, transport, limit)
                got_one = run_once(args, one, worker, transport, limit)
                if round_index > 0:
                    runs[(mib, worker, transport)]["many"].append(got_many)
                    runs[(mib, worker, transport)]["one"].append(got_one)
                print(
                    f"{mib} MiB {worker} {transport}: {got_many['wall']:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
            if round_index > 0:
                copies[mib].append(copy)
    rows = []
    for mib in sizes:
        batch_bytes = files[mib][2]
        memcpy_gbps = batch_bytes / statistics.median(copies[mib]) / 1e9
        for worker, transport in configs:
            many, one = (
                runs[(mib, worker, transport)]["many"],
                runs[(mib, worker, transport)]["one"],
            )
            seconds = per_batch(many, one, "wall")
            gbps = batch_bytes / seconds / 1e9
            rows.append(
                {
                    "mib": mib,
                    "worker": worker,
                    "transport": transport,
                    "batch_bytes": batch_bytes,
                    "roundtrip_s": seconds,
                    "gbps": gbps,
                    "memcpy_gbps": memcpy_gbps,
                    "ratio": gbps / memcpy_gbps,
                    "cpu_us": {s: 1e6 * per_batch(many, one, "", s) for s in STAGES},
                    "codec_us": 1e6 * per_batch(many, one, "codec"),
                    "udf_us": 1e6 * per_batch(many, one, "udf"),
                    "runs": {"many": many, "one": one},
                }
            )
    report = {
        "machine": f"{os.cpu_count()} cores",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quiver": str(args.quiver),
        "runs": args.runs,
        "total_mib": args.total_mib,
        "load_before": load_before,
        "load_after": ", ".join(f"{v:.1f}" for v in os.getloadavg()),
        "python_native": args.python_native,
        "rows": rows,
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16,64", help="batch sizes, MiB")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--total-mib", type=int, default=512, help="MiB per run")
    parser.add_argument("--workers-of", default="python,c++,rust")
    parser.add_argument("--transports", default="shm,uds")
    parser.add_argument("--python-native", default="", help="QUIVER_WORKER_NATIVE for the runs")
    parser.add_argument("--quiver", type=Path, default=QUIVER)
    parser.add_argument("--tag", default="", help="a suffix for the report's file names")
    parser.add_argument(
        "--baseline-python", help="also time the Python worker started by this executable"
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "shm-memcpy")
    run_roundtrip(parser.parse_args())


if __name__ == "__main__":
    main()
