"""What a worker running an async row UDF holds stays bounded, whatever the input's size.

A slow loopback server (slow_http_server.py) and a large input that the engine could send much
faster than the server answers: `quiver run` (real engine, real worker processes) must not let
the worker pile up batches, rows in flight or results, and a finished batch's answer leaves
without waiting for the later batches that ran with it (over every transport). The bounds are
in docs/async-udfs.md ("What a worker holds").
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from slow_http_server import SlowServer

QUIVER = Path(__file__).resolve().parents[2] / "build" / "cpp" / "quiver" / "cli" / "quiver"

# Self-contained, so that the worker imports nothing of the tests: one GET per row.
UDFS = '''
import asyncio

import quiver


async def get(port: int, key: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET /?key={key} HTTP/1.0\\r\\n\\r\\n".encode())
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    return answer.partition(b"\\r\\n\\r\\n")[2].decode()


@quiver.udf(returns="string", max_concurrency=64)
async def fetch(key: str, port: int) -> str:
    return await get(port, key)


@quiver.udf(returns="binary", max_concurrency=32)
async def echo(key: str, port: int, pad: bytes) -> bytes:
    """Wait for the server, then give back the row's large payload (results as large as input)."""
    if await get(port, key) != key:
        raise ValueError(f"the server did not answer {key}")
    return pad
'''

PAD_BYTES = 64 * 1024
BATCH_ROWS = 16  # 1 MiB of payload per batch, in and out


def quiver_binary() -> Path:
    """Return the quiver command, or skip saying how to build it."""
    if not QUIVER.is_file():
        pytest.skip(f"no quiver command at {QUIVER}: build it with `ninja -C build quiver`")
    return QUIVER


def quiver_run(tmp_path: Path, table: pa.Table, udf: str, *options: str) -> dict:
    """Run ``udf`` over ``table`` with `quiver run` on one worker; return its --metrics JSON."""
    (tmp_path / "udfs_memory.py").write_text(UDFS)
    source, metrics = tmp_path / "in.parquet", tmp_path / "metrics.json"
    pq.write_table(table, source)
    done = subprocess.run(
        [str(quiver_binary()), "run", str(source), "-o", str(tmp_path / "out.arrow"),
         "--udf", f"{udf.partition('(')[0]}={tmp_path / 'udfs_memory.py'}:{udf}",
         "--select", "key", "--workers", "1", "--metrics", str(metrics), *options],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(metrics.read_text())


def read_output(tmp_path: Path) -> pa.Table:
    """Read the run's output file."""
    with pa.memory_map(str(tmp_path / "out.arrow")) as source:
        return pa.ipc.open_file(source).read_all()


def padded_keys(count: int, port: int) -> pa.Table:
    """Rows ``k0 ..`` with the server's port and a 64 KiB payload each."""
    pads = [bytes([i % 251]) * PAD_BYTES for i in range(count)]
    return pa.table({"key": [f"k{i}" for i in range(count)], "port": [port] * count, "pad": pads})


def test_at_most_16_batches_start_at_once_however_many_the_engine_sends(tmp_path: Path) -> None:
    # One row per batch, 64 lanes, the engine sending 64 batches ahead: only the 16 batches
    # started at once have calls at the server (all 64 would, were every batch read started).
    with SlowServer(delay=0.1) as server:
        keys = pa.table({"key": [f"k{i}" for i in range(160)], "port": [server.port] * 160})
        quiver_run(tmp_path, keys, "fetch(key, port)", "--batch-rows", "1", "--max-in-flight", "64")
    assert server.most_in_flight == 16
    assert server.requests == 160
    assert read_output(tmp_path).column("fetch").to_pylist() == [f"k{i}" for i in range(160)]


def test_the_worker_memory_stays_bounded_with_a_slow_server_and_a_large_input(
    tmp_path: Path,
) -> None:
    rows = 2400  # 150 MiB of payload in 150 batches, and as much in results
    with SlowServer(delay=0.02) as server:
        small = quiver_run(
            tmp_path, padded_keys(BATCH_ROWS, server.port), "echo(key, port, pad)",
            "--batch-rows", str(BATCH_ROWS),
        )  # fmt: skip
        large = quiver_run(
            tmp_path, padded_keys(rows, server.port), "echo(key, port, pad)",
            "--batch-rows", str(BATCH_ROWS),
        )  # fmt: skip
    assert server.most_in_flight == 32  # the UDF's max_concurrency, never above
    assert server.requests == BATCH_ROWS + rows
    out = read_output(tmp_path)
    assert out.num_rows == rows
    assert out.column("echo")[rows - 1].as_py() == bytes([(rows - 1) % 251]) * PAD_BYTES
    # The engine keeps 4 batches (4 MiB) in flight: the worker holds those and their results,
    # not the 300 MiB of input and results that went through it.
    grown = large["groups"][0]["peak_rss_bytes"] - small["groups"][0]["peak_rss_bytes"]
    assert large["groups"][0]["rows_in"] == rows
    assert grown < 48 * 2**20, f"the worker's peak RSS grew by {grown / 2**20:.0f} MiB"


@pytest.mark.parametrize("transport", ["uds", "grpc"])
def test_a_finished_batch_is_answered_while_a_later_one_still_waits(transport: str) -> None:
    from udfs import async_http

    import quiver

    # After batch 0, batches 1 and 2 run at once: batch 1 is done after 0.5 s (row 4), batch 2
    # waits 30 s on row 9. Batch 1 must leave at once, not when every batch that ran with it is.
    with SlowServer(delay=0.05) as server:
        server.delays = {"k4": 0.5, "k9": 30.0}
        keys = pa.table({"key": [f"k{i}" for i in range(12)], "port": [server.port] * 12})
        with quiver.Session(workers=1, transport=transport, batch_timeout=60) as session:
            call = quiver.call(async_http.fetch, "key", "port")  # 8 lanes
            reader = session.map(keys, udfs=[call], batch_rows=4)
            reader.read_next_batch()
            second = reader.read_next_batch()
            assert second.column(second.schema.get_field_index("fetch")).to_pylist() == [
                "k4", "k5", "k6", "k7",
            ]  # fmt: skip
            assert server.in_flight == 1  # row 9's call still waits at the server
            reader.close()  # cancels row 9's call
        assert server.wait_idle(10)
