"""The cost of spans (figures for docs/metrics.md, "Spans").

    .venv/bin/python bench/spans_overhead.py [--rows 1000000] [--batch-rows 1000] [--repeats 7]

Small batches, so that a per-batch cost shows: ``--rows`` int64 rows in batches of
``--batch-rows``, an identity UDF, 2 workers. Interleaved in one process:

- ``quiver run`` (build/cpp/quiver/cli/quiver, or ``$QUIVER_BINARY``) from Parquet with no export,
  with ``--otlp-endpoint`` (the run's and the worker starts' spans), and with
  ``--trace-batches 1`` too (a span per batch), to a receiver on loopback that decodes them
  (metrics_export.py's);
- a ``quiver.Session`` map with ``otlp_endpoint`` and ``trace_batches`` 0 and 1.

Prints the median of ``--repeats`` of each and its difference to the first.
"""

from __future__ import annotations

import argparse
import time

import pyarrow as pa

import quiver
from metrics_export import report, start_receiver, time_quiver_run


@quiver.udf(returns="int64")
def identity(x: pa.Array) -> pa.Array:
    return x


def _cli(table: pa.Table, batch_rows: int, otlp: str, repeats: int) -> None:
    options = ["--workers", "2", "--batch-rows", str(batch_rows), "--output-format", "noop", "-q"]
    variants = {
        "no export": [],
        "--otlp-endpoint (run, worker starts)": ["--otlp-endpoint", otlp],
        "--otlp-endpoint --trace-batches 1": ["--otlp-endpoint", otlp, "--trace-batches", "1"],
    }
    times = time_quiver_run(table, options, variants, repeats)
    if times is not None:
        report(f"quiver run, {table.num_rows:,} rows in batches of {batch_rows:,}:", times)


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
    report(f"quiver.Session map, {table.num_rows:,} rows in batches of {batch_rows:,}:", times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    table = pa.table({"x": pa.array(range(args.rows), pa.int64())})
    receiver, otlp = start_receiver()
    _cli(table, args.batch_rows, otlp, args.repeats)
    _session(table, args.batch_rows, otlp, args.repeats)
    receiver.shutdown()


if __name__ == "__main__":
    main()
