"""quiver.Session.close() stops every worker, also while result readers are still alive; a reader
read afterwards raises SessionClosed; no worker process outlives a `with` block."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa
import pytest
from udfs import session_udfs as su

import quiver

pytest.importorskip("quiver._engine", reason="quiver._engine is not built (scripts/setup.sh)")

TABLE = pa.table({"x": pa.array(range(20_000), pa.int64())})


def worker_pids(pids: list[int]) -> list[int]:
    """Return those of `pids` that still run (exist and are not zombies)."""
    alive = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] != "Z":
            alive.append(pid)
    return alive


def wait_gone(pids: list[int], timeout: float = 10) -> list[int]:
    """Wait until none of `pids` runs; return those still running after `timeout` s."""
    deadline = time.monotonic() + timeout
    while worker_pids(pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return worker_pids(pids)


def started_reader(session: quiver.Session) -> tuple[pa.RecordBatchReader, list[int]]:
    """Start a map whose UDF returns its worker's pid, read one batch; return the reader and
    the pids of the workers seen so far."""
    reader = session.map(TABLE, udfs=[quiver.call(su.pid, "x")], batch_rows=500)
    first = reader.read_next_batch()
    return reader, sorted(set(first.column("pid").to_pylist()))


@pytest.mark.parametrize("transport", ["uds", "shm", "grpc"])
def test_close_stops_the_workers_while_a_reader_is_alive(transport):
    session = quiver.Session(workers=2, transport=transport)
    reader, pids = started_reader(session)
    assert worker_pids(pids) == pids
    session.close()
    assert wait_gone(pids) == [], "workers outlived close() while their reader was alive"
    with pytest.raises(quiver.SessionClosed, match="was closed"):
        reader.read_all()


def test_no_worker_outlives_a_with_block():
    with quiver.Session(workers=2) as session:
        reader, pids = started_reader(session)
        table = session.map(TABLE, udfs=[quiver.call(su.pid, "x")]).read_all()
        pids = sorted(set(pids) | set(table.column("pid").to_pylist()))
    assert wait_gone(pids) == []
    del reader


def test_a_reader_read_to_its_end_before_close_is_unaffected():
    with quiver.Session(workers=1) as session:
        reader = session.map(TABLE, udfs=[quiver.call(su.pid, "x")])
        table = reader.read_all()
    assert table.num_rows == len(TABLE)
    assert os.getpid() not in table.column("pid").to_pylist()
