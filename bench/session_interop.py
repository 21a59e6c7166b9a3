"""quiver.Session over Polars and DuckDB data vs the same data converted to a pyarrow Table.

    .venv/bin/python bench/session_interop.py --rows 2000000

For each source, times ``s.map(source)`` read to its end, and ``s.map(convert(source))``
where convert is the library's own export to a ``pa.Table`` (``DataFrame.to_arrow()``,
``relation.to_arrow_table()``), conversion included. Same time within noise means the Arrow
C stream path adds no copy. The UDF is a pyarrow identity (no pandas), so the engine's own
overhead is what shows. One warm Session throughout; prints one line per measurement.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

import quiver


@quiver.udf(returns="string")
def same(data: pa.Array) -> pa.Array:
    """Return the strings unchanged."""
    return data


def median_ms(run: Callable[[], None], runs: int) -> float:
    """Run once to warm up, then `runs` times; return the median in milliseconds."""
    run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def drain(session: quiver.Session, source: Any) -> None:
    """Map `source` and read every result batch."""
    for _batch in session.map(source, udfs=[quiver.call(same, "data")]):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    arguments = parser.parse_args()
    import duckdb
    import polars as pl

    table = pa.table(
        {
            "id": pa.array(range(arguments.rows), pa.int64()),
            "data": pa.array(["x" * arguments.length] * arguments.rows, pa.string()),
        }
    )
    frame = pl.from_arrow(table)
    connection = duckdb.connect()
    connection.register("source", table)
    relation = connection.sql("SELECT * FROM source")
    cases: dict[str, Callable[[quiver.Session], None]] = {
        "pa.Table": lambda s: drain(s, table),
        "polars DataFrame": lambda s: drain(s, frame),
        "polars -> pa.Table": lambda s: drain(s, frame.to_arrow()),
        "duckdb relation": lambda s: drain(s, relation),
        "duckdb -> pa.Table": lambda s: drain(s, relation.to_arrow_table()),
    }
    print(f"rows={arguments.rows} length={arguments.length} workers={arguments.workers}")
    with quiver.Session(workers=arguments.workers) as session:
        for name, case in cases.items():
            ms = median_ms(lambda case=case: case(session), arguments.runs)
            print(f"{name:22s} median {ms:8.1f} ms  {arguments.rows / ms / 1000:6.2f} M rows/s")


if __name__ == "__main__":
    main()
