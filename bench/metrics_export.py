"""The cost of exporting a session's metrics (figures for docs/metrics.md, "Export").

    .venv/bin/python bench/metrics_export.py [--rows 1000000] [--repeats 5]

One process, interleaved: a ``quiver.Session`` map of an identity UDF over ``--rows`` int64
rows (batches of 65,536, 2 workers), its wall time (the result read to its end) with export
off, with a Prometheus endpoint scraped every 100 ms during the map, and with OTLP/HTTP export
every 100 ms to a receiver on loopback that decodes each request. Prints the median of
``--repeats`` for each and the difference to export off, and the median time of one scrape.

Then ``quiver run`` (build/cpp/quiver/cli/quiver, or ``$QUIVER_BINARY``) of the same identity UDF
over the same rows from Parquet, with and without ``--otlp-endpoint`` to that receiver,
interleaved, the median of ``2 x --repeats`` of each.
"""

from __future__ import annotations

import argparse
import http.server
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import quiver


@quiver.udf(returns="int64")
def identity(x: pa.Array) -> pa.Array:
    return x


class _Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        """Decode what a collector gets: metrics or spans, protobuf or JSON (quiver run)."""
        from google.protobuf import json_format
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            request = trace_service_pb2.ExportTraceServiceRequest()
        else:
            request = metrics_service_pb2.ExportMetricsServiceRequest()
        if self.headers["Content-Type"] == "application/json":
            json_format.Parse(body.decode(), request)
        else:
            request.ParseFromString(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _timed_map(session: quiver.Session, table: pa.Table) -> float:
    start = time.perf_counter()
    session.map(table, [quiver.call(identity, "x")]).read_all()
    return time.perf_counter() - start


def _scraping(url: str, stop: threading.Event) -> None:
    while not stop.wait(0.1):
        urllib.request.urlopen(url, timeout=5).read()


def start_receiver() -> tuple[http.server.ThreadingHTTPServer, str]:
    """A collector on loopback that decodes each post (its server, its URL)."""
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    return receiver, f"http://127.0.0.1:{receiver.server_address[1]}"


def report(title: str, times: dict[str, list[float]]) -> None:
    """Print each variant's median and its difference to the first variant's."""
    base = statistics.median(next(iter(times.values())))
    print(title)
    for name, measured in times.items():
        median = statistics.median(measured)
        print(f"  {name:40} {median * 1000:8.1f} ms  {100 * (median / base - 1):+6.1f}%")


def time_quiver_run(
    table: pa.Table, options: list[str], variants: dict[str, list[str]], repeats: int
) -> dict[str, list[float]] | None:
    """Seconds of `quiver run` of an identity UDF over `table` (as Parquet) with `options`,
    per variant (its extra options), the variants interleaved `repeats` times; None without
    a quiver binary (build/cpp/quiver/cli/quiver, or $QUIVER_BINARY)."""
    root = Path(__file__).resolve().parents[1]
    binary = os.environ.get("QUIVER_BINARY", str(root / "build/cpp/quiver/cli/quiver"))
    if not os.access(binary, os.X_OK):
        print(f"quiver run: skipped, no binary at {binary}")
        return None
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        pq.write_table(table, folder / "in.parquet")
        (folder / "udfs.py").write_text(
            "import pyarrow as pa, quiver\n\n@quiver.udf(returns='int64')\n"
            "def identity(x: pa.Array) -> pa.Array:\n    return x\n"
        )
        command = [binary, "run", "in.parquet", "--udf", "y=udfs.py:identity(x)", *options]
        environment = dict(os.environ, QUIVER_PYTHON=sys.executable)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(repeats):
            for name, extra in variants.items():
                start = time.perf_counter()
                subprocess.run(command + extra, cwd=folder, env=environment, check=True)
                times[name].append(time.perf_counter() - start)
    return times


def _cli(table: pa.Table, otlp: str, repeats: int) -> None:
    variants = {"off": [], "--otlp-endpoint": ["--otlp-endpoint", otlp]}
    times = time_quiver_run(table, ["-o", "out.parquet", "-q", "--force"], variants, repeats)
    if times is not None:
        report(f"quiver run, {table.num_rows:,} rows from Parquet, median of {repeats}:", times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    table = pa.table({"x": pa.array(range(args.rows), pa.int64())})
    os.environ["OTEL_METRIC_EXPORT_INTERVAL"] = "100"
    receiver, otlp = start_receiver()
    sessions: dict[str, Callable[[], quiver.Session]] = {
        "export off": lambda: quiver.Session(workers=2),
        "prometheus, scraped every 100 ms": lambda: quiver.Session(workers=2, prometheus_port=0),
        "otlp/http every 100 ms": lambda: quiver.Session(workers=2, otlp_endpoint=otlp),
    }
    opened = {name: make() for name, make in sessions.items()}
    stop = threading.Event()
    scraper = opened["prometheus, scraped every 100 ms"].prometheus_url or ""
    threading.Thread(target=_scraping, args=(scraper, stop), daemon=True).start()
    times: dict[str, list[float]] = {name: [] for name in opened}
    for session in opened.values():
        _timed_map(session, table)  # start the workers
    for _ in range(args.repeats):
        for name, session in opened.items():
            times[name].append(_timed_map(session, table))
    stop.set()
    _cli(table, otlp, 2 * args.repeats)
    scrapes = []
    for _ in range(20):
        start = time.perf_counter()
        urllib.request.urlopen(scraper, timeout=5).read()
        scrapes.append(time.perf_counter() - start)
    for session in opened.values():
        session.close()
    receiver.shutdown()
    base = statistics.median(times["export off"])
    print(f"{args.rows:,} rows, identity UDF, 2 workers, median of {args.repeats}:")
    for name, measured in times.items():
        median = statistics.median(measured)
        print(f"  {name:34} {median * 1000:8.1f} ms  {100 * (median / base - 1):+6.1f}%")
    print(f"  one scrape (2 workers' series)     {statistics.median(scrapes) * 1000:8.2f} ms")


if __name__ == "__main__":
    main()
