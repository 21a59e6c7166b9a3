"""Summarize quiver_bench_shm's JSON as Markdown: shm and uds beside socket and memcpy.

python bench/micro/summarize_shm.py shm.json > shm.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: Path) -> None:
    """Print the table of GB/s and ratios, one row per batch size."""
    report = json.loads(path.read_text())
    rows = [b for b in report["benchmarks"] if b.get("aggregate_name", "median") == "median"]
    figures: dict[str, dict[str, float]] = {}
    for benchmark in rows:
        size, _, transport = benchmark.get("label", "").partition(" ")
        column = transport or benchmark["name"].split("/")[0]
        figures.setdefault(size, {})[column] = benchmark.get("bytes_per_second", 0.0) / 1e9
    context = report.get("context", {})
    print("# The shm transport: identity round trip vs uds and the machine's limits\n")
    print(
        f"{context.get('num_cpus', '?')} CPUs at {context.get('mhz_per_cpu', '?')} MHz, "
        f"run {context.get('date', '?')}; medians of the repetitions. One string column through "
        "the Python worker's identity `pa.Array` UDF, 4 batches in flight. Bytes count each "
        "batch once, though a round trip moves it to the worker and back; the raw socket moves "
        "it one way, memcpy copies it once. The machine was shared with other builds: compare "
        "the ratios (same run), not the absolute figures.\n"
    )
    header = ["batch", "shm (GB/s)", "uds (GB/s)", "raw socket (GB/s)", "memcpy (GB/s)"]
    header += ["shm / uds", "shm / socket", "shm / memcpy", "uds / memcpy"]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if a and b else "–"

    for size, row in figures.items():
        shm, uds = row.get("shm", 0.0), row.get("uds", 0.0)
        sock, copy = row.get("BM_UnixSocket", 0.0), row.get("BM_Memcpy", 0.0)
        if not (shm or uds):
            continue
        cells = [size, f"{shm:.2f}", f"{uds:.2f}", f"{sock:.2f}", f"{copy:.2f}"]
        cells += [ratio(shm, uds), ratio(shm, sock), ratio(shm, copy), ratio(uds, copy)]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
