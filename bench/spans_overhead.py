"""The cost of spans (figures for docs/metrics.md, "Spans").

    .venv/bin/python bench/spans_overhead.py [--rows 1000000] [--batch-rows 1000] [--repeats 7]

Small batches, so that a per-batch cost shows: ``--rows`` int64 rows in batches of
``--batch-rows``, an identity UDF, 2 workers. Interleaved in one process:

- ``quiver run`` (build/cpp/quiver/cli/quiver, or ``$QUIVER_BINARY``) from Parquet with no export,
  with ``--otlp-endpoint`` (the run's and the worker starts' spans), and with
  ``--trace-batches 1`` too (a span per batch), to a receiver on loopback that decodes them;
- a ``quiver.Session`` map with ``otlp_endpoint`` and ``trace_batches`` 0 and 1.

Prints the median of ``--repeats`` of each and its difference to the first.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import quiver


@quiver.udf(returns="int64")
def identity(x: pa.Array) -> pa.Array:
    return x


class _Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers["Content-Type"] == "application/json":
            json.loads(body)  # what a collector reads first
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _report(title: str, times: dict[str, list[float]]) -> None:
    base = statistics.median(next(iter(times.values())))
    print(title)
    for name, measured in times.items():
        median = statistics.median(measured)
        print(f"  {name:40} {median * 1000:8.1f} ms  {100 * (median / base - 1):+6.1f}%")


def _cli(table: pa.Table, batch_rows: int, otlp: str, repeats: int) -> None:
    root = Path(__file__).resolve().parents[1]
    binary = os.environ.get("QUIVER_BINARY", str(root / "build/cpp/quiver/cli/quiver"))
    if not os.access(binary, os.X_OK):
        print(f"quiver run: skipped, no binary at {binary}")
        return
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        pq.write_table(table, folder / "in.parquet")
        (folder / "udfs.py").write_text(
            "import pyarrow as pa, quiver\n\n@quiver.udf(returns='int64')\n"
            "def identity(x: pa.Array) -> pa.Array:\n    return x\n"
        )
        command = [binary, "run", "in.parquet", "--udf", "y=udfs.py:identity(x)", "--workers"]
        command += ["2", "--batch-rows", str(batch_rows), "--output-format", "noop", "-q"]
        environment = dict(os.environ, QUIVER_PYTHON=sys.executable)
        variants = {
            "no export": [],
            "--otlp-endpoint (run, worker starts)": ["--otlp-endpoint", otlp],
            "--otlp-endpoint --trace-batches 1": ["--otlp-endpoint", otlp, "--trace-batches", "1"],
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(repeats):
            for name, extra in variants.items():
                start = time.perf_counter()
                subprocess.run(command + extra, cwd=folder, env=environment, check=True)
                times[name].append(time.perf_counter() - start)
    _report(f"quiver run, {table.num_rows:,} rows in batches of {batch_rows:,}:", times)


def _session(table: pa.Table, batch_rows: int, otlp: str, repeats: int) -> None:
    sessions = {
        f"Session, trace_batches={rate}": quiver.Session(
            workers=2, otlp_endpoint=otlp, trace_batches=rate
        )
        for rate in (0, 1)
    }
    times: dict[str, list[float]] = {name: [] for name in sessions}
    try:
        for session in sessions.values():  # start the workers
            session.map(table, [quiver.call(identity, "x")], batch_rows=batch_rows).read_all()
        for _ in range(repeats):
            for name, session in sessions.items():
                start = time.perf_counter()
                out = session.map(table, [quiver.call(identity, "x")], batch_rows=batch_rows)
                out.read_all()
                times[name].append(time.perf_counter() - start)
    finally:
        for session in sessions.values():
            session.close()
    _report(f"quiver.Session map, {table.num_rows:,} rows in batches of {batch_rows:,}:", times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    table = pa.table({"x": pa.array(range(args.rows), pa.int64())})
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    otlp = f"http://127.0.0.1:{receiver.server_address[1]}"
    _cli(table, args.batch_rows, otlp, args.repeats)
    _session(table, args.batch_rows, otlp, args.repeats)
    receiver.shutdown()


if __name__ == "__main__":
    main()
