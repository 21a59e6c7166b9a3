"""quiver.Session(log_dir=...): every line a session's workers write, kept as JSON lines with
its UDF, batch and level, as `quiver run --log-dir` keeps them, and searchable with
`quiver logs`."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import quiver
from quiver.errors import InvalidInput

pytest.importorskip("quiver._engine", reason="quiver._engine is not built (scripts/setup.sh)")

ROWS = 40
BATCH_ROWS = 10
BATCHES = ROWS // BATCH_ROWS
QUIVER = Path(__file__).resolve().parents[2] / "build" / "cpp" / "quiver" / "cli" / "quiver"


@quiver.udf(returns="int64")
def chatty(x: pa.Array) -> pa.Array:
    first = x[0].as_py()
    print(f"print stdout first={first}")
    print(f"print stderr first={first}", file=sys.stderr)
    log = logging.getLogger("chatty")
    log.debug(f"debug first={first}")  # below INFO: not kept
    log.info(f"info first={first}")
    log.warning(f"warning first={first}")
    log.error(f"error first={first}")
    os.write(1, f"raw fd1 first={first}\n".encode())
    os.write(2, f"raw fd2 first={first}\n".encode())
    return x


def _kept(directory: Path) -> list[dict]:
    files = sorted(directory.glob("worker-*.jsonl"))
    assert files, f"no worker logs in {directory}"
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


def _map(session: quiver.Session) -> None:
    table = pa.table({"x": pa.array(range(ROWS), pa.int64())})
    session.map(table, [quiver.call(chatty, "x")], batch_rows=BATCH_ROWS).read_all()


@pytest.mark.parametrize("workers", [1, 2])
def test_every_way_a_udf_writes_is_kept_with_its_batch_and_level(
    tmp_path: Path, workers: int
) -> None:
    logs = tmp_path / "logs" / "deeper"  # made when missing
    with quiver.Session(workers=workers, max_in_flight=1, log_dir=logs) as s:
        _map(s)
    assert len(list(logs.glob("worker-*.jsonl"))) == workers
    lines = [line for line in _kept(logs) if "first=" in line["message"]]
    assert len(lines) == 7 * BATCHES  # nothing twice; DEBUG is below the kept level
    for batch in range(BATCHES):
        first = batch * BATCH_ROWS
        mine = {
            (line["level"], line["message"])
            for line in lines
            if line["batch"] == batch and line["message"].endswith(f"first={first}")
        }
        assert mine == {
            ("output", f"print stdout first={first}"),
            ("output", f"print stderr first={first}"),
            ("info", f"info first={first}"),
            ("warning", f"warning first={first}"),
            ("error", f"error first={first}"),
            ("output", f"raw fd1 first={first}"),
            ("output", f"raw fd2 first={first}"),
        }
    for line in lines:
        assert line["udfs"] == ["chatty"] and line["pid"] > 0 and line["time"].endswith("Z")
        assert line["logger"] == ("chatty" if line["level"] != "output" else "")
    assert len({line["worker"] for line in lines}) == workers


def test_a_second_map_on_warm_workers_goes_to_the_same_files(tmp_path: Path) -> None:
    with quiver.Session(workers=1, max_in_flight=1, log_dir=tmp_path) as s:
        _map(s)
        _map(s)
    [log] = tmp_path.glob("worker-*.jsonl")
    lines = [line for line in _kept(tmp_path) if line["message"] == "error first=0"]
    assert len(lines) == 2  # once per map, each filed under batch 0 of its own run
    assert all(line["batch"] == 0 for line in lines)


def test_quiver_logs_searches_a_sessions_logs(tmp_path: Path) -> None:
    if not QUIVER.is_file():
        pytest.skip(f"no quiver binary at {QUIVER}")
    with quiver.Session(workers=2, max_in_flight=1, log_dir=tmp_path) as s:
        _map(s)
    found = subprocess.run(
        [QUIVER, "logs", tmp_path, "--level", "error", "--udf", "chatty", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    messages = sorted(json.loads(line)["message"] for line in found.stdout.splitlines())
    assert messages == sorted(f"error first={b * BATCH_ROWS}" for b in range(BATCHES))


def test_a_log_dir_that_is_a_file_or_cannot_be_written_is_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(InvalidInput, match="is a file, not a directory"):
        quiver.Session(workers=1, log_dir=a_file)
    if os.geteuid() == 0:
        return  # root writes anywhere
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(InvalidInput, match="cannot be written"):
        quiver.Session(workers=1, log_dir=locked)
