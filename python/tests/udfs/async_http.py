"""Async UDFs that call the tests' loopback HTTP server (slow_http_server.py)."""

from __future__ import annotations

import asyncio
import os

import pyarrow as pa

import quiver


class ServiceUnavailable(Exception):  # noqa: N818 - named after the HTTP status
    """The server answered 503."""


async def get(port: int, key: str) -> str:
    """GET ``/?key=KEY`` over a fresh connection; raise on anything but 200."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET /?key={key}&pid={os.getpid()} HTTP/1.0\r\n\r\n".encode())
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    if not answer:
        raise ConnectionResetError("the server closed the connection without answering")
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    status = int(status_line.split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    if status == 429:
        raise quiver.RetryAfter(float(headers["retry-after"]), "429 Too Many Requests")
    if status == 503:
        raise ServiceUnavailable(f"503 for key {key}")
    return body.decode()


@quiver.udf(returns="string", max_concurrency=8)
async def fetch(key: str, port: int) -> str:
    """Return what the server answers for ``key``."""
    return await get(port, key)


@quiver.udf(
    returns="string",
    max_concurrency=8,
    on_error="null",
    retries=quiver.Retry(max_attempts=3, initial=0.01, on=(ServiceUnavailable, ConnectionError)),
)
async def fetch_or_null(key: str, port: int) -> str:
    """Return what the server answers for ``key``; null (with the error) when it will not."""
    return await get(port, key)


@quiver.udf(returns="int64", eval_type="scalar_row", on_error="null")
def inverse_percent(x: int) -> int:
    """Return 100 // x (a plain row UDF: x = 0 fails its row)."""
    return 100 // x


@quiver.udf(returns="string", max_concurrency=4)
class Tagger:
    """A class UDF with an async __call__: one instance per worker, its prefix set up once."""

    def __init__(self, prefix: str = "tag") -> None:
        self.prefix = prefix
        self.calls = 0

    async def __call__(self, key: str, port: int) -> str:
        self.calls += 1
        return f"{self.prefix}:{await get(port, key)}"


@quiver.udf(returns="string", max_concurrency=3, on_error="null")
async def fetch_each(keys: pa.Array, ports: pa.Array) -> pa.Array:
    """An async batch UDF: fetch its slice's keys one after another."""
    pairs = zip(keys.to_pylist(), ports.to_pylist(), strict=True)
    return pa.array([await get(port, key) for key, port in pairs])


_running = {"now": 0, "most": 0}


@quiver.udf(returns="int64", max_concurrency=8)
async def slow_echo(x: int) -> int:
    """Return ``x`` after 50 ms less 4 ms per unit of ``x % 10`` (later rows answer sooner), or
    after a minute for ``x`` of 1000 and more; the counter ``most_at_once`` ends at the most
    calls this worker ran at once."""
    _running["now"] += 1
    if _running["now"] > _running["most"]:
        quiver.metrics.counter("most_at_once").add(_running["now"] - _running["most"])
        _running["most"] = _running["now"]
    try:
        await asyncio.sleep(60.0 if x >= 1000 else 0.05 - 0.004 * (x % 10))
    finally:
        _running["now"] -= 1
    return x


_total = {"sum": 0}


@quiver.udf(returns="int64")
def running_total(x: pa.Array) -> pa.Array:
    """The sum of every value this worker was given so far, row by row: right only when the
    batches come in order."""
    sums = []
    for value in x.to_pylist():
        _total["sum"] += value
        sums.append(_total["sum"])
    return pa.array(sums, pa.int64())
