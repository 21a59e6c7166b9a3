"""Summarize the microbenchmarks' JSON (bench/micro/run.sh) as bench/results/micro/summary.md.

python bench/micro/summarize.py OUT_DIR   # reads OUT_DIR/{stream,framing,roundtrip}.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROUND_TRIP = "BM_WorkerRoundTrip"
SOCKET = "BM_UnixSocket"
MEMCPY = "BM_Memcpy"


def load(path: Path) -> dict:
    """Return one program's JSON, or an empty report when it is missing.

    With --benchmark_repetitions only the medians are kept.
    """
    report = json.loads(path.read_text()) if path.exists() else {"benchmarks": []}
    medians = [b for b in report["benchmarks"] if b.get("aggregate_name") == "median"]
    if medians:
        report["benchmarks"] = medians
    return report


def gigabytes(benchmark: dict) -> float:
    """Return a benchmark's throughput in GB/s (10^9 bytes per second)."""
    return benchmark.get("bytes_per_second", 0.0) / 1e9


def microseconds(benchmark: dict) -> float:
    """Return a benchmark's wall time per iteration in µs."""
    scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[benchmark.get("time_unit", "ns")]
    return benchmark.get("real_time", 0.0) * scale


def family(benchmark: dict) -> str:
    """Return "BM_Memcpy" for "BM_Memcpy/65536/real_time"."""
    return benchmark["name"].split("/")[0]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Return a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def ratio(numerator: float, denominator: float) -> str:
    """Return numerator / denominator as "0.42", or "–"."""
    return f"{numerator / denominator:.2f}" if numerator and denominator else "–"


def round_trip_figures(report: dict) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Return GB/s by batch size and column, and the transports of the round trips.

    A round trip's label is "SIZE" or "SIZE TRANSPORT"; its column is "trip TRANSPORT"
    (uds when the label names none); the limits' columns are their benchmark names.
    """
    by_size: dict[str, dict[str, float]] = {}
    transports: list[str] = []
    for benchmark in report["benchmarks"]:
        size, _, transport = benchmark.get("label", "").partition(" ")
        column = family(benchmark)
        if column == ROUND_TRIP:
            transport = transport or "uds"
            column = f"trip {transport}"
            if transport not in transports:
                transports.append(transport)
        by_size.setdefault(size, {})[column] = gigabytes(benchmark)
    return by_size, transports


def round_trip_table(report: dict) -> list[str]:
    """Per batch size: quiver's round trips beside raw socket and memcpy, and the ratios."""
    by_size, transports = round_trip_figures(report)
    header = ["batch"] + [f"quiver round trip, {t} (GB/s)" for t in transports]
    header += ["raw Unix socket (GB/s)", "memcpy (GB/s)"]
    header += [f"{t} / socket" for t in transports] + [f"{t} / memcpy" for t in transports]
    rows = []
    for size, figures in by_size.items():
        trips = [figures.get(f"trip {t}", 0.0) for t in transports]
        socket, memcpy = figures.get(SOCKET, 0.0), figures.get(MEMCPY, 0.0)
        row = [size] + [f"{trip:.2f}" for trip in trips] + [f"{socket:.2f}", f"{memcpy:.2f}"]
        row += [ratio(trip, socket) for trip in trips] + [ratio(trip, memcpy) for trip in trips]
        rows.append(row)
    return table(header, rows)


def throughput_table(report: dict, reads: bool = False) -> list[str]:
    """One row per benchmark: name, what it ran on, time per iteration, GB/s.

    Zero-copy operations cost the same whatever the size: their GB/s only says how many
    bytes one call hands on; the time per call is the figure that matters.
    """
    rows = []
    for benchmark in report["benchmarks"]:
        row = [family(benchmark), benchmark.get("label", ""), f"{microseconds(benchmark):.2f}"]
        row += [per_item(benchmark)] if reads else []
        rows.append(row + [f"{gigabytes(benchmark):.2f}"])
    header = ["benchmark", "case", "µs per iteration"] + (["ns per read"] if reads else [])
    return table(header + ["GB/s"], rows)


def per_item(benchmark: dict) -> str:
    """Return ns per item (a read of the stream) when the benchmark counts items."""
    items = benchmark.get("items_per_second")
    return f"{1e9 / items:.0f}" if items else "–"


def machine(report: dict) -> str:
    """Return the machine line from Google Benchmark's context and /proc/cpuinfo."""
    context = report.get("context", {})
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    caches = ", ".join(
        f"L{cache['level']} {cache['type'].lower()} {cache['size'] // 1024} KiB"
        for cache in context.get("caches", [])
    )
    return f"{model}, {context.get('num_cpus', '?')} cores; {caches}; run {context.get('date', '')}"


def summary(out: Path) -> str:
    """Return summary.md for the JSON files in `out`."""
    round_trip = load(out / "roundtrip.json")
    lines = [
        "# quiver microbenchmarks",
        "",
        f"Machine: {machine(round_trip)}",
        "",
        "## Round trip through a Python worker vs the physical limits (quiver_bench_roundtrip)",
        "",
        "One string column through an identity `pa.Array` UDF in a real worker, "
        "pipelined (4 batches in flight), driven through WorkerExecution. Bytes count each batch "
        "once, though a round trip moves them to the worker and back; the raw socket moves them "
        "one way, memcpy copies them once.",
        "",
        *round_trip_table(round_trip),
        "",
        "## ChunkedInputStream (quiver_bench_stream)",
        "",
        *throughput_table(load(out / "stream.json"), reads=True),
        "",
        "## Framing and batch IPC codec (quiver_bench_framing)",
        "",
        *throughput_table(load(out / "framing.json")),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Write OUT_DIR/summary.md."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    (out / "summary.md").write_text(summary(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
