"""Async UDFs against a service that answers in 50 ms (figures for docs/async-udfs.md).

    .venv/bin/python bench/async_udfs.py [--rows 10000] [--repeats 3]

Measures, in one run:

- ``--rows`` rows through a row UDF that awaits a loopback HTTP call answered after 50 ms (an
  asyncio server in a process of its own; the UDF keeps a small keep-alive connection pool),
  one worker, ``max_concurrency`` N = 1, 8, 64, 256: wall time and the ratio of the ideal
  ``rows x 50 ms / N`` to it (100% = no overhead). N = 1 and 8 run fewer rows (``--rows`` / 50
  and / 5) so that the run stays short; their ideal is computed for the rows they ran.
  Median of ``--repeats`` for N >= 64, one run below;
- the cost per row of an async row UDF that does no I/O against the same plain row UDF
  (200,000 rows, median of ``--repeats``), and of that plain row UDF against an Arrow batch UDF;
- small batches: ``--rows`` rows at N = 64 in batches of ``--small-batch-rows`` (100), where the
  calls must span batch boundaries to keep 64 in flight, against the same rows in batches of
  2,500 (median of ``--repeats``);
- Daft: the same ``--rows`` rows through Daft's async ``@daft.func(max_concurrency=64)`` calling
  the same service with the same client (median of ``--repeats``; skipped when Daft is missing).

- Spark: the same rows through a PySpark Arrow Python UDF (``useArrow=True``, a blocking
  client) with ``spark.sql.execution.pythonUDF.arrow.concurrency.level`` = 64, ``local[2]``,
  in 1 and in 2 partitions, and quiver with as many calls at once (1 and 2 workers of N = 64;
  median of ``--repeats``; skipped when pyspark is missing).

``--only service,small,overhead,daft,spark`` runs some of the parts; ``--transport grpc`` (or shm)
runs quiver's workers over another transport.

``--uvloop DIR`` runs the workers' event loops on uvloop instead, from DIR (made with
``pip install --target DIR uvloop``; quiver does not depend on it), to compare the two.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import quiver

DELAY = 0.05


# ---- the service: answers every request after DELAY seconds, keep-alive ----


def _serve(port_out: multiprocessing.connection.Connection) -> None:
    # Requests being answered now, and the most at once since the last "__peak__" request
    # (which answers that figure and starts counting again).
    load = {"now": 0, "peak": 0}

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                key = head.split(b" ", 2)[1].rpartition(b"=")[2]
                if key == b"__peak__":
                    key, load["peak"] = b"%d" % load["peak"], 0
                else:
                    load["now"] += 1
                    load["peak"] = max(load["peak"], load["now"])
                    await asyncio.sleep(DELAY)
                    load["now"] -= 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(key), key))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=1024)
        port_out.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


# ---- a minimal HTTP/1.1 keep-alive client (no dependency) ----


async def _get(port: int, key: str) -> str:
    """GET /?key=KEY and return the body, over an idle connection when there is one."""
    # Idle connections per port, kept on the loop they belong to: a worker's loop lasts as long
    # as the worker, whatever copy of this function (pickled by value) calls it.
    loop = asyncio.get_running_loop()
    if not hasattr(loop, "bench_idle"):
        loop.bench_idle = {}  # type: ignore[attr-defined]
    pool = loop.bench_idle.setdefault(port, [])  # type: ignore[attr-defined]
    reader, writer = pool.pop() if pool else await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET /?key={key} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
    except BaseException:
        writer.close()
        raise
    pool.append((reader, writer))
    return body.decode()


# ---- the UDFs ----


@quiver.udf(returns="string", max_concurrency=1)
async def lookup(key: str, port: int) -> str:
    """GET /?key=KEY on a pooled keep-alive connection; return the body."""
    return await _get(port, key)


@quiver.udf(returns="int64", max_concurrency=64)
async def plus_one_async(x: int) -> int:
    return x + 1


@quiver.udf(returns="string")
async def loop_kind(x: int) -> str:
    """Name the module of the event loop the worker runs async UDFs on."""
    return type(asyncio.get_running_loop()).__module__


@quiver.udf(returns="int64", eval_type="scalar_row")
def plus_one_row(x: int) -> int:
    return x + 1


@quiver.udf(returns="int64")
def plus_one_arrow(x: pa.Array) -> pa.Array:
    return pc.add(x, 1)


def _map(session: quiver.Session, table: pa.Table, call: quiver.UdfCall, batch_rows: int) -> float:
    started = time.perf_counter()
    out = session.map(table, udfs=[call], batch_rows=batch_rows).read_all()
    took = time.perf_counter() - started
    assert out.num_rows == table.num_rows
    return took


def _start_service() -> tuple[multiprocessing.Process, int]:
    """Start the service in a process of its own; return it and its port."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=_serve, args=(sender,), daemon=True)
    server.start()
    return server, receiver.recv()


def _keys(count: int, port: int) -> pa.Table:
    return pa.table({"key": [f"k{i}" for i in range(count)], "port": [port] * count})


def bench_service(port: int, rows: int, repeats: int, session_options: dict) -> None:
    print(f"service: answers after {DELAY * 1000:.0f} ms; one worker; batches of 2,500 rows")
    print(f"{'N':>5} {'rows':>7} {'wall s':>8} {'ideal s':>8} {'of ideal':>9}")
    with quiver.Session(workers=1, batch_timeout=600, **session_options) as session:
        for n in (1, 8, 64, 256):
            count = rows // 50 if n == 1 else rows // 5 if n == 8 else rows
            table = _keys(count, port)
            call = quiver.call(lookup, "key", "port", max_concurrency=n)
            _map(session, table.slice(0, min(count, 2 * n)), call, 2500)  # warm the pool
            runs = [_map(session, table, call, 2500) for _ in range(repeats if n >= 64 else 1)]
            wall = statistics.median(runs)
            ideal = count * DELAY / n
            print(f"{n:>5} {count:>7} {wall:>8.2f} {ideal:>8.2f} {ideal / wall:>8.0%}")


def bench_small_batches(
    port: int, rows: int, small: int, repeats: int, session_options: dict
) -> None:
    n = 64
    ideal = rows * DELAY / n
    print(f"\nN = {n}, {rows:,} rows, one worker (ideal {ideal:.2f} s), median of {repeats}")
    table = _keys(rows, port)
    call = quiver.call(lookup, "key", "port", max_concurrency=n)
    with quiver.Session(workers=1, batch_timeout=600, **session_options) as session:
        _map(session, table.slice(0, 2 * n), call, small)  # warm the pool
        for batch_rows in (small, 2500):
            wall = statistics.median(_map(session, table, call, batch_rows) for _ in range(repeats))
            print(f"  batches of {batch_rows:>5} rows: {wall:6.2f} s  {ideal / wall:4.0%} of ideal")


def _peak(port: int) -> int:
    """Ask the service for the most requests it answered at once since the last asking."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /?key=__peak__ HTTP/1.1\r\nHost: bench\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)  # the service answers, then sees the end and closes
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return int(answer.partition(b"\r\n\r\n")[2])


def bench_daft(port: int, rows: int, repeats: int) -> None:
    try:
        import daft
    except ImportError:
        print("\nDaft: not installed (bench/requirements-no-deps.txt); skipped")
        return
    n = 64
    ideal = rows * DELAY / n

    @daft.func(return_dtype=daft.DataType.string(), max_concurrency=n)
    async def daft_lookup(key: str, port: int) -> str:
        return await _get(port, key)

    def once() -> float:
        started = time.perf_counter()
        frame = daft.from_arrow(_keys(rows, port))
        out = frame.select(daft_lookup(frame["key"], frame["port"])).to_arrow()
        took = time.perf_counter() - started
        assert out.num_rows == rows
        return took

    once()  # warm up
    _peak(port)
    wall = statistics.median(once() for _ in range(repeats))
    peak = _peak(port)
    print(f"\nDaft {daft.__version__}, async @daft.func(max_concurrency={n}), {rows:,} rows:")
    print(f"  {wall:6.2f} s  {ideal / wall:4.0%} of ideal (median of {repeats})")
    print(f"  most calls at once at the service: {peak} (max_concurrency bounds Daft's instances)")
    # quiver with as many calls at once as Daft made.
    call = quiver.call(lookup, "key", "port", max_concurrency=peak)
    with quiver.Session(workers=1, batch_timeout=600) as session:
        table = _keys(rows, port)
        _map(session, table.slice(0, 2 * peak), call, 2500)  # warm the pool
        _peak(port)
        quiver_wall = statistics.median(_map(session, table, call, 2500) for _ in range(repeats))
        quiver_peak = _peak(port)
    print(f"  quiver, max_concurrency={peak}: {quiver_wall:6.2f} s (at most {quiver_peak} at once)")


# ---- Spark: an Arrow Python UDF with its concurrency level (SPARK-50446) ----

_CONNECTIONS = None  # per Python worker thread: a keep-alive connection to the service


def _get_blocking(port: int, key: str) -> str:
    """GET /?key=KEY on this thread's keep-alive connection (Spark's UDF threads block)."""
    global _CONNECTIONS
    import http.client
    import threading

    if _CONNECTIONS is None:
        _CONNECTIONS = threading.local()
    connection = getattr(_CONNECTIONS, "connection", None)
    if connection is None:
        connection = _CONNECTIONS.connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("GET", f"/?key={key}", headers={"Host": "bench"})
    return connection.getresponse().read().decode()


def bench_spark(port: int, rows: int, repeats: int) -> None:
    """The same rows through a PySpark Arrow UDF run 64 rows at once per task."""
    try:
        import pyspark
        from pyspark.sql import SparkSession
        from pyspark.sql import functions as F  # noqa: N812 - Spark's usual name
    except ImportError:
        print("\nSpark: pyspark not installed; skipped")
        return
    import os
    import sys

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    n = 64
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("async-udfs-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.pythonUDF.arrow.concurrency.level", str(n))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    lookup_spark = F.udf(_get_blocking, "string", useArrow=True)
    print(
        f"\nSpark {pyspark.__version__} local[2], Arrow Python UDF (useArrow=True), "
        f"spark.sql.execution.pythonUDF.arrow.concurrency.level={n}, {rows:,} rows, "
        f"median of {repeats}:"
    )
    try:
        for partitions in (1, 2):
            frame = spark.range(rows, numPartitions=partitions).select(
                F.lit(port).alias("port"), F.concat(F.lit("k"), F.col("id")).alias("key")
            )
            query = frame.select(lookup_spark("port", "key").alias("got"))

            def once(query=query) -> float:
                started = time.perf_counter()
                count = query.agg(F.count("got")).collect()[0][0]
                took = time.perf_counter() - started
                assert count == rows
                return took

            once()  # warm up the JVM and the Python workers
            _peak(port)
            wall = statistics.median(once() for _ in range(repeats))
            peak = _peak(port)
            ideal = rows * DELAY / (n * partitions)
            print(
                f"  {partitions} partition(s), {n * partitions} calls at once at most: "
                f"{wall:6.2f} s  {ideal / wall:4.0%} of ideal (at most {peak} at the service)"
            )
    finally:
        spark.stop()
    # quiver with as many calls at once: one worker per Spark task, N = 64 each.
    table = _keys(rows, port)
    call = quiver.call(lookup, "key", "port", max_concurrency=n)
    for workers in (1, 2):
        with quiver.Session(workers=workers, batch_timeout=600) as session:
            _map(session, table.slice(0, 4 * n), call, 2500)  # warm the pools
            _peak(port)
            wall = statistics.median(_map(session, table, call, 2500) for _ in range(repeats))
            peak = _peak(port)
        ideal = rows * DELAY / (n * workers)
        print(
            f"  quiver, {workers} worker(s) of N = {n}, batches of 2,500: {wall:6.2f} s  "
            f"{ideal / wall:4.0%} of ideal (at most {peak} at the service)"
        )


def bench_overhead(repeats: int, session_options: dict) -> None:
    rows = 200_000
    table = pa.table({"x": pa.array(range(rows), pa.int64())})
    print(f"\nper-row cost, no I/O, {rows:,} rows, one worker, batches of 10,000 rows (median)")
    with quiver.Session(workers=1, **session_options) as session:
        results = {}
        for label, udf in (
            ("arrow batch UDF", plus_one_arrow),
            ("plain row UDF", plus_one_row),
            ("async row UDF, N=64", plus_one_async),
        ):
            call = quiver.call(udf, "x")
            _map(session, table.slice(0, 10_000), call, 10_000)
            results[label] = statistics.median(
                _map(session, table, call, 10_000) for _ in range(repeats)
            )
            per_row = results[label] / rows * 1e6
            print(f"  {label:<22} {results[label]:6.2f} s  {per_row:6.2f} us/row")
    extra = (results["async row UDF, N=64"] - results["plain row UDF"]) / rows * 1e6
    print(f"  async over plain row UDF: {extra:+.2f} us/row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--uvloop", type=Path, help="a folder with uvloop installed in it")
    parser.add_argument("--small-batch-rows", type=int, default=100)
    parser.add_argument("--only", default="service,small,overhead,daft,spark", help="parts to run")
    parser.add_argument(
        "--transport", default="uds", help="the workers' transport (uds, shm, grpc)"
    )
    args = parser.parse_args()
    parts = set(args.only.split(","))
    server, port = _start_service()
    try:
        with tempfile.TemporaryDirectory() as hook:
            options: dict = {"transport": args.transport}
            if args.uvloop is not None:
                options["environment"] = _uvloop_environment(args.uvloop, hook)
            with quiver.Session(workers=1, **options) as session:
                kind = session.map(pa.table({"x": [1]}), udfs=[quiver.call(loop_kind, "x")])
                print("workers' event loop:", kind.read_all().column("loop_kind")[0].as_py())
            if "service" in parts:
                bench_service(port, args.rows, args.repeats, options)
            if "small" in parts:
                bench_small_batches(port, args.rows, args.small_batch_rows, args.repeats, options)
            if "overhead" in parts:
                bench_overhead(args.repeats, options)
            if "daft" in parts:
                bench_daft(port, args.rows, args.repeats)
            if "spark" in parts:
                bench_spark(port, args.rows, args.repeats)
    finally:
        server.kill()


def _uvloop_environment(uvloop_dir: Path, hook: str) -> dict[str, str]:
    """Return worker environment variables that make every new event loop a uvloop one."""
    Path(hook, "sitecustomize.py").write_text(
        "import asyncio, uvloop\nasyncio.set_event_loop_policy(uvloop.EventLoopPolicy())\n"
    )
    return {"PYTHONPATH": f"{hook}:{uvloop_dir.resolve()}"}


if __name__ == "__main__":
    main()
