"""Async UDFs, retries, per-call timeouts and on_error, through quiver.Session and real workers.

Each test starts a loopback HTTP server (slow_http_server.py) that answers after a delay and
fails on request (429 with Retry-After, 503, a dropped connection); the UDFs in
udfs/async_http.py call it from worker processes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa
import pytest
from slow_http_server import SlowServer
from udfs import async_http

import quiver


def keys_table(count: int, port: int) -> pa.Table:
    """Rows ``k0 .. k{count-1}``, each with the server's port."""
    return pa.table({"key": [f"k{i}" for i in range(count)], "port": [port] * count})


def run(call: quiver.UdfCall, table: pa.Table, **session: object) -> pa.Table:
    """Map ``table`` through ``call`` on one worker, in one batch."""
    with quiver.Session(workers=1, **session) as s:
        return s.map(table, udfs=[call], select=["key"], batch_rows=len(table)).read_all()


def test_rows_come_back_in_order_with_n_calls_at_once_at_the_server() -> None:
    with SlowServer(delay=0.1) as server:
        # Later rows answer sooner: order must come from the worker, not from arrival.
        server.delays = {f"k{i}": 0.1 + 0.004 * (40 - i) for i in range(40)}
        started = time.monotonic()
        out = run(quiver.call(async_http.fetch, "key", "port"), keys_table(40, server.port))
        took = time.monotonic() - started
    assert out.column("fetch").to_pylist() == [f"k{i}" for i in range(40)]
    assert server.most_in_flight == 8
    assert server.requests == 40
    # 40 rows of ~0.18 s, 8 at a time, is ~1 s; one at a time would take 7 s.
    assert took < 5


def test_concurrency_is_the_one_given_to_quiver_call() -> None:
    with SlowServer(delay=0.05) as server:
        call = quiver.call(async_http.fetch, "key", "port", max_concurrency=3)
        out = run(call, keys_table(30, server.port))
    assert out.column("fetch").to_pylist() == [f"k{i}" for i in range(30)]
    assert server.most_in_flight == 3


def test_a_429_is_retried_after_the_wait_it_advertises() -> None:
    with SlowServer(delay=0.01) as server:
        server.plan = {"k2": ["429:1", "ok"], "k5": ["429:0.5", "429:0.5", "ok"]}
        call = quiver.call(async_http.fetch, "key", "port", retries=quiver.Retry(max_attempts=3))
        out = run(call, keys_table(8, server.port))
    assert out.column("fetch").to_pylist() == [f"k{i}" for i in range(8)]
    k2, k5 = server.arrivals["k2"], server.arrivals["k5"]
    assert len(k2) == 2 and k2[1] - k2[0] >= 1.0
    assert len(k5) == 3 and k5[1] - k5[0] >= 0.5 and k5[2] - k5[1] >= 0.5


def test_rows_that_keep_failing_are_null_with_their_error() -> None:
    with SlowServer(delay=0.01) as server:
        server.plan = {
            "k1": ["503", "503", "503"],  # fails all three attempts
            "k3": ["drop", "drop", "drop"],
            "k4": ["503", "ok"],  # recovers on its second attempt
        }
        out = run(quiver.call(async_http.fetch_or_null, "key", "port"), keys_table(6, server.port))
    assert out.column_names == ["key", "fetch_or_null", "fetch_or_null__error"]
    assert out.column("fetch_or_null").to_pylist() == ["k0", None, "k2", None, "k4", "k5"]
    errors = out.column("fetch_or_null__error").to_pylist()
    assert errors[0] is None and errors[2] is None and errors[4] is None
    assert errors[1] == "udfs.async_http.ServiceUnavailable: 503 for key k1"
    assert errors[3].startswith("ConnectionResetError: ")
    assert len(server.arrivals["k1"]) == 3 and len(server.arrivals["k4"]) == 2


def test_a_row_that_fails_under_on_error_raise_fails_the_run_naming_the_row() -> None:
    with SlowServer(delay=0.01) as server:
        server.plan = {"k2": ["503"]}
        with pytest.raises(quiver.UdfError) as info:
            run(quiver.call(async_http.fetch, "key", "port"), keys_table(5, server.port))
    error = info.value
    assert "ServiceUnavailable" in str(error) and "503 for key k2" in str(error)
    assert "in row 2 of the batch" in error.traceback


def test_a_call_over_its_timeout_is_that_rows_error() -> None:
    with SlowServer(delay=0.01) as server:
        server.delays = {"k1": 20.0}
        call = quiver.call(async_http.fetch_or_null, "key", "port", timeout=0.5, retries=None)
        out = run(call, keys_table(4, server.port))
        assert server.wait_idle(2.0), "the timed-out request is still pending at the server"
    assert out.column("fetch_or_null").to_pylist() == ["k0", None, "k2", "k3"]
    error = out.column("fetch_or_null__error")[1].as_py()
    assert error.startswith("quiver.worker.call_policy.CallTimedOut: the call took more than 0.5 s")
    assert server.abandoned == 1


def test_a_batch_timeout_leaves_no_pending_request_and_no_worker() -> None:
    with SlowServer(delay=60.0) as server:
        call = quiver.call(async_http.fetch, "key", "port", max_concurrency=4)
        started = time.monotonic()
        with pytest.raises(quiver.UdfTimeout):
            run(call, keys_table(8, server.port), batch_timeout=1.5)
        assert time.monotonic() - started < 15
        assert server.wait_idle(5.0), f"{server.in_flight} requests still pending"
        assert server.requests == 4 and server.abandoned == 4
    assert server.pids, "the UDF did not report its worker"
    for pid in server.pids:
        assert _gone(pid, 5.0), f"worker {pid} is still running"


def test_a_plain_row_udf_keeps_its_failing_rows_too() -> None:
    table = pa.table({"x": [4, 0, 20, None]})
    with quiver.Session(workers=1) as s:
        out = s.map(table, udfs=[quiver.call(async_http.inverse_percent, "x")]).read_all()
    assert out.column("inverse_percent").to_pylist() == [25, None, 5, None]
    errors = out.column("inverse_percent__error").to_pylist()
    assert errors[0] is None and errors[2] is None
    assert errors[1] == "ZeroDivisionError: integer division or modulo by zero"
    assert errors[3].startswith("TypeError: unsupported operand")


def _gone(pid: int, seconds: float) -> bool:
    """Wait until process ``pid`` has exited (or is a zombie awaiting its parent)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


assert os.name == "posix"  # the worker checks read /proc
