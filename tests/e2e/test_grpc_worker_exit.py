"""A gRPC worker ends by itself once the engine asks it to (Manage(shutdown)), as a uds worker does.

The engine gives a healthy worker a short wait to exit before it sends SIGTERM. A worker whose
server waited for the engine's idle connection to close used up that wait on every run (the run
ended ~0.5 s after its work). The worker's log, sent to a file by a wrapper around its Python
(which execs it: the engine checks the pid that serves), says which way it ended.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from quiver_e2e import assert_ok, people_table, read_table, spec, write_table


def wrapped_python(tmp_path: Path) -> tuple[Path, Path]:
    """Return a 'Python' that appends the worker's stderr to a log, and the log."""
    log = tmp_path / "worker.log"
    wrapper = tmp_path / "python-logging"
    wrapper.write_text(f'#!/bin/bash\nexec "{sys.executable}" "$@" 2>>"{log}"\n')
    wrapper.chmod(0o755)
    return wrapper, log


@pytest.mark.parametrize("transport", ["grpc", "grpc+tcp", "uds"])
def test_a_worker_asked_to_shut_down_exits_by_itself(quiver, private_tmp, tmp_path, transport):
    source = write_table(people_table(500), tmp_path / "in.parquet")
    python, log = wrapped_python(tmp_path)
    out = tmp_path / "out.arrow"
    result = quiver(
        "run", source, "--udf", spec("y", "untrusted", "echo", "name"), "--transport", transport,
        "--workers", 2, "--batch-rows", 100, "--python", python, "--no-daemon", "-q", "-o", out,
    )  # fmt: skip
    assert_ok(result)
    assert read_table(out).column("y").to_pylist() == people_table(500).column("name").to_pylist()
    worker_log = log.read_text()
    assert "SIGTERM" not in worker_log, worker_log
    if transport != "uds":  # a uds worker ends with its connection, without a Shutdown line
        assert worker_log.count("Shutdown: exiting") == 2, worker_log
