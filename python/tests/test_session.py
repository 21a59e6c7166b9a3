"""quiver.Session end to end: real worker processes, real Arrow streams."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from udfs import session_udfs as su

import quiver

pytest.importorskip("quiver._engine", reason="quiver._engine is not built (scripts/setup.sh)")

HERE = Path(__file__).resolve().parent


def children(pid: int | None = None) -> set[int]:
    """The live (not zombie) child processes of ``pid`` (default: this process)."""
    parent = pid or os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and fields[0] != "Z":
            found.add(int(entry))
    return found


def wait_until_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)}
        time.sleep(0.05)
    return alive


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def session():
    with quiver.Session(workers=2, batch_timeout=20) as s:
        yield s


TABLE = pa.table({"id": pa.array(range(10), pa.int64()), "name": [f"n{i}" for i in range(10)]})


def test_map_runs_decorated_functions_by_reference(session):
    udf_call = quiver.call(su.shout, "name")
    assert udf_call.payload_format == "python/ref"
    assert udf_call.payload == b"udfs.session_udfs:shout"
    out = session.map(TABLE, udfs=[udf_call, quiver.call(su.add, "id", "id")], batch_rows=3)
    assert isinstance(out, pa.RecordBatchReader)
    result = out.read_all()
    assert result.column_names == ["id", "name", "shout", "add"]
    assert result["shout"].to_pylist() == [f"N{i}" for i in range(10)]
    assert result["add"].to_pylist() == [2 * i for i in range(10)]


def test_the_shm_transport_maps_the_same_results():
    with quiver.Session(workers=2, transport="shm") as s:
        out = s.map(TABLE, udfs=[quiver.call(su.shout, "name")], batch_rows=3).read_all()
    assert out["shout"].to_pylist() == [f"N{i}" for i in range(10)]


def test_results_stream_in_batches_of_at_most_batch_rows(session):
    out = session.map(TABLE, udfs=[quiver.call(su.add, "id", "id")], batch_rows=4, select=[])
    assert [b.num_rows for b in out] == [4, 4, 2]


def test_file_references_expressions_and_literals(session, tmp_path):
    udf_file = tmp_path / "my_udfs.py"
    udf_file.write_text(
        "import pyarrow as pa, pyarrow.compute as pc, quiver\n"
        "@quiver.udf(returns='int64')\n"
        "def times(x: pa.Array, k: pa.Array) -> pa.Array:\n"
        "    return pc.multiply(x, k)\n"
    )
    out = session.map(
        TABLE,
        udfs=[
            quiver.call(f"{udf_file}:times", pc.field("id") + 1, 10),
            quiver.call(str(udf_file) + ":times", "id", pc.scalar(2), name="twice"),
        ],
        select=["id"],
    ).read_all()
    assert out.column_names == ["id", "times", "twice"]
    assert out["times"].to_pylist() == [(i + 1) * 10 for i in range(10)]
    assert out["twice"].to_pylist() == [2 * i for i in range(10)]


def test_functions_defined_here_travel_by_value_in_chunks_when_large():
    blob = os.urandom(3 << 20)  # makes the pickled function span PayloadChunks (1 MiB each)

    @quiver.udf(returns="int64")
    def blob_size(x: pa.Array) -> pa.Array:
        return pc.add(pc.multiply(x, 0), len(blob))

    udf_call = quiver.call(blob_size, "id")
    assert udf_call.payload_format == "python/cloudpickle"
    assert len(udf_call.payload) > 3 << 20
    # gRPC refuses messages over 4 MiB: the payload must arrive in chunks.
    for transport in ("uds", "grpc"):
        with quiver.Session(workers=1, transport=transport) as s:
            out = s.map(TABLE, udfs=[udf_call]).read_all()
        assert out["blob_size"].to_pylist() == [len(blob)] * 10


def test_input_columns_kept_beside_results_are_not_copied(session):
    ids = pa.array(range(1000), pa.int64())
    table = pa.table({"id": ids})
    out = session.map(table, udfs=[quiver.call(su.add, "id", "id")]).read_all()
    assert out["id"].chunks[0].buffers()[1].address == ids.buffers()[1].address


def test_second_map_starts_no_worker():
    with quiver.Session(workers=2) as s:
        s.map(TABLE, udfs=[quiver.call(su.shout, "name")]).read_all()
        assert s.workers_started == 2
        pids = set(
            s.map(TABLE, udfs=[quiver.call(su.pid, "id")], batch_rows=1)
            .read_all()["pid"]
            .to_pylist()
        )
        assert s.workers_started == 2
        assert len(pids) == 2
        workers = children()
        assert pids <= workers
    assert wait_until_gone(pids) == set()


def test_udf_error_keeps_its_kind_and_traceback(session):
    table = pa.table({"id": pa.array([1, -1], pa.int64())})
    with pytest.raises(quiver.UdfError) as caught:
        session.map(table, udfs=[quiver.call(su.fail_on_negative, "id")]).read_all()
    error = caught.value
    assert error.udf_name == "fail_on_negative"
    assert error.error_class == "ValueError"
    assert "negative input" in error.traceback and "session_udfs.py" in error.traceback
    assert not error.retryable
    # the session lives on
    assert session.map(TABLE, udfs=[quiver.call(su.shout, "name")]).read_all().num_rows == 10


def test_worker_crash_and_timeout_raise_their_kinds():
    with quiver.Session(workers=1, batch_timeout=1) as s:
        with pytest.raises(quiver.WorkerCrashed) as crashed:
            s.map(TABLE, udfs=[quiver.call(su.kill_self, "id")]).read_all()
        assert crashed.value.signal == signal.SIGKILL and crashed.value.retryable
        with pytest.raises(quiver.UdfTimeout):
            s.map(TABLE, udfs=[quiver.call(su.sleepy, "id")]).read_all()
        assert s.map(TABLE, udfs=[quiver.call(su.shout, "name")]).read_all().num_rows == 10


def test_a_worker_printing_bytes_that_are_not_utf8_still_raises_its_kind(session):
    # What a worker prints reaches the error as text: invalid UTF-8 as \\xNN escapes.
    with pytest.raises(quiver.WorkerCrashed) as crashed:
        session.map(TABLE, udfs=[quiver.call(su.garble_and_exit, "id")]).read_all()
    assert crashed.value.exit_status == 3
    assert "last words \\xff\\xfe\\xc3(" in crashed.value.log_tail
    assert session.map(TABLE, udfs=[quiver.call(su.shout, "name")]).read_all().num_rows == 10


def test_bad_input_raises_before_any_worker_starts(tmp_path):
    before = children()
    with quiver.Session(workers=1) as s:
        with pytest.raises(TypeError, match="__arrow_c_stream__"):
            s.map([1, 2, 3], udfs=[quiver.call(su.shout, "name")])
        with pytest.raises(quiver.InvalidInput, match="did you mean 'name'"):
            s.map(TABLE, udfs=[quiver.call(su.shout, "nmae")])
        with pytest.raises(quiver.InvalidInput, match="no file"):
            quiver.call(str(tmp_path / "missing.py") + ":f")
        with pytest.raises(quiver.InvalidInput, match="cannot be imported"):
            quiver.call("no_such_module_anywhere:f")
        assert s.workers_started == 0
        broken = tmp_path / "broken.py"
        broken.write_text("import no_such_module_anywhere\n")
        with pytest.raises(quiver.WorkerError, match="no_such_module_anywhere"):
            s.map(TABLE, udfs=[quiver.call(f"{broken}:f", "id")]).read_all()
    with pytest.raises(quiver.SessionClosed):
        s.map(TABLE, udfs=[quiver.call(su.shout, "name")])
    assert wait_until_gone(children() - before) == set()


def test_the_gil_is_free_while_workers_compute():
    ticks = 0
    stop = threading.Event()

    def count():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        with quiver.Session(workers=1, environment={"QUIVER_TEST_SLEEP": "0.5"}) as s:
            s.map(TABLE, udfs=[quiver.call(su.sleepy, "id")]).read_all()
    finally:
        stop.set()
        counter.join()
    assert ticks > 100


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=HERE,
    )


def test_ctrl_c_cancels_the_run_and_leaves_the_session_usable():
    # The child starts as an interactive interpreter does, Ctrl-C raising KeyboardInterrupt:
    # a process inherits a blocked or ignored SIGINT from whatever started it, and the test
    # runner's process may carry one (a library it loaded for an earlier test).
    result = run_python(
        """
        import os, signal, threading, time
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import pyarrow as pa, quiver
        from udfs import session_udfs as su
        table = pa.table({"id": pa.array(range(4), pa.int64())})
        with quiver.Session(workers=1) as s:
            s.map(table, udfs=[quiver.call(su.pid, "id")]).read_all()   # warm
            threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
            start = time.monotonic()
            try:
                s.map(table, udfs=[quiver.call(su.sleepy, "id")]).read_all()
            except KeyboardInterrupt:
                print("interrupted after", round(time.monotonic() - start, 1))
            out = s.map(table, udfs=[quiver.call(su.pid, "id")]).read_all()
            print("rows", out.num_rows)
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    said = f"stdout: {result.stdout!r}, stderr: {result.stderr[-2000:]!r}"
    assert lines[0].startswith("interrupted after") and float(lines[0].split()[-1]) < 3, said
    assert lines[1] == "rows 4"


@pytest.mark.parametrize("ending", ["exit", "gc"])
def test_no_worker_outlives_the_interpreter_or_the_session(ending):
    end = "del s; import gc; gc.collect(); print(sorted(live()))" if ending == "gc" else ""
    result = run_python(
        f"""
        import os
        import pyarrow as pa, quiver
        from udfs import session_udfs as su
        from test_session import children as live
        s = quiver.Session(workers=2)
        s.map(pa.table({{"id": pa.array([1, 2], pa.int64())}}),
              udfs=[quiver.call(su.pid, "id")], batch_rows=1).read_all()
        print(sorted(live()))
        {end}
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    workers = set(eval(lines[0]))
    assert len(workers) == 2
    if ending == "gc":
        assert eval(lines[1]) == [] or wait_until_gone(set(eval(lines[1]))) == set()
    assert wait_until_gone(workers) == set()


def test_a_slice_of_a_view_column_sends_only_its_own_bytes(session):
    # Polars exports strings as string_view; a slice of a view array keeps every data
    # buffer of the column, and sending them whole sent the column with every batch.
    rows, length = 20_000, 100
    table = pa.table({"s": pa.array([f"{i:0{length}d}" for i in range(rows)], pa.string_view())})
    batches = list(session.map(table, udfs=[quiver.call(su.buffer_bytes, "s")], batch_rows=1000))
    assert [b.num_rows for b in batches] == [1000] * 20
    received = max(max(b.column("buffer_bytes").to_pylist()) for b in batches)
    assert received < 1000 * (length + 16) * 1.1, f"a 1,000-row batch arrived as {received} bytes"


def test_polars_and_duckdb_in_and_out(session, tmp_path):
    pl = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    import pyarrow.parquet as pq

    frame = pl.DataFrame({"id": list(range(10)), "name": [f"n{i}" for i in range(10)]})
    out = pl.from_arrow(session.map(frame, udfs=[quiver.call(su.shout, "name")]))
    assert out["shout"].to_list() == [f"N{i}" for i in range(10)]

    relation = duckdb.sql("select range as id, 'x' || range as name from range(10)")
    connection = duckdb.connect()
    connection.register("results", session.map(relation, udfs=[quiver.call(su.add, "id", "id")]))
    total = connection.sql("select sum(add) as s from results").fetchall()[0][0]
    assert total == sum(2 * i for i in range(10))

    pq.write_table(
        session.map(TABLE, udfs=[quiver.call(su.shout, "name")]).read_all(),
        tmp_path / "out.parquet",
    )
    assert pq.read_table(tmp_path / "out.parquet").column_names == ["id", "name", "shout"]


@quiver.udf(returns="int64")
def rows_in_batch(x: pa.Array) -> pa.Array:
    return pa.array([len(x)] * len(x), type=pa.int64())


def test_batches_over_batch_bytes_are_cut_into_pieces_of_whole_rows(session):
    # One input batch of 20 distinct 100 KB strings (2 MB): 250 KiB holds two of them.
    values = [os.urandom(50_000).hex() for _ in range(20)]
    table = pa.table({"id": pa.array(range(20), pa.int64()), "s": values})
    out = session.map(
        table, udfs=[quiver.call(rows_in_batch, "s")], select=["id"], batch_bytes=250 << 10
    ).read_all()
    assert out["id"].to_pylist() == list(range(20))
    assert set(out["rows_in_batch"].to_pylist()) == {2}
    whole = session.map(table, udfs=[quiver.call(rows_in_batch, "s")], select=[]).read_all()
    assert set(whole["rows_in_batch"].to_pylist()) == {20}  # 2 MB is under the default cap
    with pytest.raises(quiver.InvalidInput, match="batch_bytes"):
        session.map(table, udfs=[quiver.call(rows_in_batch, "s")], batch_bytes=0)


def test_the_transports_are_the_engine_registrys_names_aliases_included():
    with pytest.raises(quiver.InvalidInput, match="unknown transport 'spark'") as refused:
        quiver.Session(transport="spark")  # a runtime's scheme, not offered to sessions
    for name in ("uds", "shm", "grpc", "grpc+unix", "grpc+tcp"):
        assert name in str(refused.value)
    with quiver.Session(workers=1, transport="grpc") as session:
        out = session.map(pa.table({"s": ["a", "b"]}), udfs=[quiver.call(rows_in_batch, "s")])
        assert out.read_all()["rows_in_batch"].to_pylist() == [2, 2]
