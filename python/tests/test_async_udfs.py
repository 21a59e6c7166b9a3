"""Async UDFs, retries, per-call timeouts and on_error, through quiver.Session and real workers.

Each test starts a loopback HTTP server (slow_http_server.py) that answers after a delay and
fails on request (429 with Retry-After, 503, a dropped connection); the UDFs in
udfs/async_http.py call it from worker processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
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
        out = run(quiver.call(async_http.fetch, "key", "port"), keys_table(40, server.port))
    assert out.column("fetch").to_pylist() == [f"k{i}" for i in range(40)]
    assert server.most_in_flight == 8
    assert server.requests == 40


@pytest.mark.parametrize("transport", ["uds", "shm", "grpc"])
def test_the_calls_span_batch_boundaries_with_small_batches(transport: str) -> None:
    with SlowServer(delay=0.2) as server:
        # Later rows of each batch answer sooner, and every batch holds fewer rows than lanes:
        # order comes from the worker, and the lanes go on with the next batches' rows.
        server.delays = {f"k{i}": 0.2 + 0.01 * (4 - i % 4) for i in range(48)}
        with quiver.Session(workers=1, transport=transport) as s:
            call = quiver.call(async_http.fetch, "key", "port")  # max_concurrency=8
            out = s.map(keys_table(48, server.port), udfs=[call], batch_rows=4).read_all()
    assert out.column("fetch").to_pylist() == [f"k{i}" for i in range(48)]
    assert server.most_in_flight == 8  # 4 (one batch at a time) before batches overlapped
    assert server.requests == 48


def test_rows_that_fail_keep_their_errors_per_batch_when_batches_overlap() -> None:
    with SlowServer(delay=0.05) as server:
        server.plan = {f"k{i}": ["503", "503", "503"] for i in (1, 6, 7, 13)}
        with quiver.Session(workers=1) as s:
            call = quiver.call(async_http.fetch_or_null, "key", "port")
            out = s.map(keys_table(16, server.port), udfs=[call], batch_rows=3).read_all()
    values = out.column("fetch_or_null").to_pylist()
    errors = out.column("fetch_or_null__error").to_pylist()
    failed = {1, 6, 7, 13}
    assert values == [None if i in failed else f"k{i}" for i in range(16)]
    for i, error in enumerate(errors):
        assert (error == f"udfs.async_http.ServiceUnavailable: 503 for key k{i}") == (i in failed)


def test_a_row_that_fails_a_later_batch_in_flight_names_its_row() -> None:
    with SlowServer(delay=0.05) as server:
        server.plan = {"k9": ["503"]}
        with quiver.Session(workers=1) as s, pytest.raises(quiver.UdfError) as info:
            call = quiver.call(async_http.fetch, "key", "port")
            s.map(keys_table(24, server.port), udfs=[call], batch_rows=4).read_all()
        assert server.wait_idle(5.0), f"{server.in_flight} requests still pending"
    assert "503 for key k9" in str(info.value)
    assert "in row 1 of the batch" in info.value.traceback  # k9: row 1 of rows 8-11


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


@pytest.mark.parametrize("transport", ["uds", "shm", "grpc"])
def test_a_cancel_from_the_engine_stops_the_calls_a_batch_waits_on(transport: str) -> None:
    with SlowServer(delay=0.01) as server:
        # Batch 0 (worker 1) fails after 1 s; batch 1 (worker 2) waits on four slow calls,
        # until the engine cancels its execution because the run failed.
        server.plan = {"k0": ["503"]}
        server.delays = {"k0": 1.0, **{f"k{i}": 60.0 for i in range(4, 8)}}
        started = time.monotonic()
        with quiver.Session(workers=2, transport=transport) as s:
            call = quiver.call(async_http.fetch, "key", "port", max_concurrency=4)
            with pytest.raises(quiver.UdfError, match="503 for key k0"):
                s.map(keys_table(8, server.port), udfs=[call], batch_rows=4).read_all()
            assert server.wait_idle(5.0), f"{server.in_flight} requests still pending"
            assert time.monotonic() - started < 30
            # The cancelled worker is idle again and serves the next run.
            again = s.map(keys_table(4, server.port), udfs=[call], batch_rows=2).read_all()
    assert again.column("fetch").to_pylist() == ["k0", "k1", "k2", "k3"]
    assert all(f"k{i}" in server.arrivals for i in range(4, 8))
    assert server.abandoned == 4  # the slow calls, cut when the Cancel came


def test_a_plain_row_udf_keeps_its_failing_rows_too() -> None:
    table = pa.table({"x": [4, 0, 20, None]})
    with quiver.Session(workers=1) as s:
        out = s.map(table, udfs=[quiver.call(async_http.inverse_percent, "x")]).read_all()
    assert out.column("inverse_percent").to_pylist() == [25, None, 5, None]
    errors = out.column("inverse_percent__error").to_pylist()
    assert errors[0] is None and errors[2] is None
    assert errors[1] == "ZeroDivisionError: integer division or modulo by zero"
    assert errors[3].startswith("TypeError: unsupported operand")


def test_a_class_udf_with_an_async_call_runs_concurrently() -> None:
    with SlowServer(delay=0.1) as server:
        call = quiver.call(async_http.Tagger, "key", "port", init={"prefix": "t"})
        out = run(call, keys_table(12, server.port))
    assert out.column("Tagger").to_pylist() == [f"t:k{i}" for i in range(12)]
    assert server.most_in_flight == 4


def test_an_async_batch_udf_runs_n_slices_of_the_batch_at_once() -> None:
    with SlowServer(delay=0.05) as server:
        server.plan = {"k5": ["503"]}
        out = run(quiver.call(async_http.fetch_each, "key", "port"), keys_table(12, server.port))
    assert server.most_in_flight == 3  # three slices of four rows, each fetching in turn
    expected = [f"k{i}" for i in range(12)]
    expected[4:8] = [None] * 4  # k5's slice failed as a whole
    assert out.column("fetch_each").to_pylist() == expected
    errors = out.column("fetch_each__error").to_pylist()
    assert errors[4:8] == ["udfs.async_http.ServiceUnavailable: 503 for key k5"] * 4
    assert errors[:4] == [None] * 4 and errors[8:] == [None] * 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_concurrency": 0}, "max_concurrency= must be 1 or more"),
        ({"on_error": "nul"}, "did you mean 'null'"),
        ({"timeout": -1}, "timeout= must be a finite number of seconds"),
        ({"retries": 3}, "retries= takes quiver.Retry"),
    ],
)
def test_bad_options_fail_at_declaration(options: dict, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        quiver.udf(returns="string", **options)(async_http.fetch.func)
    with pytest.raises((TypeError, ValueError), match=message):
        quiver.call(async_http.fetch, "key", "port", **options)


def test_an_async_generator_and_a_negative_retry_after_are_refused() -> None:
    async def stream(x: str):  # noqa: ANN202 - the point is its missing return
        yield x

    with pytest.raises(TypeError, match="is an async generator"):
        quiver.udf(returns="string")(stream)
    with pytest.raises(ValueError, match="0 seconds or more"):
        quiver.RetryAfter(-1)
    with pytest.raises(TypeError, match="must be an async def"):
        quiver.udf(returns="int64", eval_type="scalar_row", max_concurrency=4)(lambda x: x)


QUIVER = Path(__file__).resolve().parents[2] / "build" / "cpp" / "quiver" / "cli" / "quiver"
UDF_FILE = Path(__file__).resolve().parent / "udfs" / "async_http.py"


def quiver_binary() -> Path:
    """Return the quiver command, or skip saying how to build it."""
    if not QUIVER.is_file():
        pytest.skip(f"no quiver command at {QUIVER}: build it with `ninja -C build quiver`")
    return QUIVER


def test_quiver_run_takes_udf_options(tmp_path: Path) -> None:
    binary = quiver_binary()
    with SlowServer(delay=0.01) as server:
        server.plan = {"k2": ["503", "503"]}
        pq.write_table(keys_table(6, server.port), tmp_path / "in.parquet")
        done = subprocess.run(
            [str(binary), "run", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"),
             "--udf", f"got={UDF_FILE}:fetch(key, port)", "--select", "key",
             "--udf-option", "got.on_error=null", "--udf-option", "got.max_concurrency=2",
             "--udf-option", "got.retries=2", "--metrics", str(tmp_path / "metrics.json")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert "failed   1 row of 'got': null, their errors in got__error" in done.stderr
    # Six calls and the retry of k2, in the summary and in --metrics.
    assert "counter  got__calls = 7 (got)" in done.stderr
    assert "counter  got__retries = 1 (got)" in done.stderr
    counters = json.loads((tmp_path / "metrics.json").read_text())["groups"][0]["counters"]
    assert counters["got__calls"] == 7 and counters["got__retries"] == 1
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column_names == ["key", "got", "got__error"]
    assert out.column("got").to_pylist() == ["k0", "k1", None, "k3", "k4", "k5"]
    assert out.column("got__error")[2].as_py().endswith("ServiceUnavailable: 503 for key k2")
    assert server.most_in_flight == 2 and len(server.arrivals["k2"]) == 2


def test_attempts_waits_and_timeouts_are_counted_in_the_runs_metrics(tmp_path: Path) -> None:
    binary = quiver_binary()
    with SlowServer(delay=0.01) as server:
        server.plan = {
            "k1": ["429:0.2", "ok"],  # one retry after 200 ms
            "k3": ["429:0.1", "429:0.1", "ok"],  # two retries after 100 ms each
            "k4": ["503", "503", "503"],  # two retries with back-off, then the row fails
        }
        server.delays = {"k6": 5.0}  # over the timeout: counted, not retried
        pq.write_table(keys_table(8, server.port), tmp_path / "in.parquet")
        done = subprocess.run(
            [str(binary), "run", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"),
             "--udf", f"f={UDF_FILE}:fetch_or_null(key, port)", "--udf-option", "f.timeout=0.5",
             "--metrics", str(tmp_path / "metrics.json")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert "counter  f__retries = 5 (f)" in done.stderr
    counters = json.loads((tmp_path / "metrics.json").read_text())["groups"][0]["counters"]
    assert counters["f__calls"] == 13  # 8 rows, 5 retries
    assert counters["f__retries"] == 5
    assert counters["f__timeouts"] == 1
    # 200 + 2 x 100 ms advertised, and k4's back-off of 10 + 20 ms (jitter 10%).
    assert 425 <= counters["f__retry_wait_ms"] <= 435


def test_quiver_run_refuses_a_misspelled_udf_option_before_any_worker_starts(
    tmp_path: Path,
) -> None:
    binary = quiver_binary()
    pq.write_table(keys_table(2, 1), tmp_path / "in.parquet")
    done = subprocess.run(
        [str(binary), "run", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"),
         "--udf", f"got={UDF_FILE}:fetch(key, port)", "--udf-option", "got.on_eror=null"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "'on_eror' is not a UDF option" in done.stderr
    assert "quiver-worker" not in done.stderr


def test_ctrl_c_on_quiver_run_leaves_no_pending_request_and_no_worker(tmp_path: Path) -> None:
    binary = quiver_binary()
    with SlowServer(delay=60.0) as server:
        pq.write_table(keys_table(8, server.port), tmp_path / "in.parquet")
        process = subprocess.Popen(
            [str(binary), "run", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "o.parquet"),
             "--udf", f"got={UDF_FILE}:fetch(key, port)", "--udf-option", "got.max_concurrency=4"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while server.requests < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.requests == 4, "the UDF's calls did not reach the server"
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=15)
        finally:
            process.kill()
        assert process.returncode != 0
        assert server.wait_idle(5.0), f"{server.in_flight} requests still pending"
    for pid in server.pids:
        assert _gone(pid, 5.0), f"worker {pid} is still running"


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
