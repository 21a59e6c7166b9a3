"""A fork server killed while its worker runs: the run fails saying that the fork server died."""

from __future__ import annotations

import os
import signal
import subprocess

from quiver_e2e import assert_failed
from test_forkserver_runs import fork_dir, parent_of, source, udfs, wait_until, warm

__all__ = ["fork_dir", "source", "udfs"]  # fixtures, used by name


def test_a_fork_server_killed_mid_run_is_named(quiver, source, udfs, fork_dir, tmp_path):
    server = warm(quiver, source, udfs, fork_dir)
    pid_file = tmp_path / "worker.pid"
    quiver.env["PID_FILE"] = str(pid_file)
    out = tmp_path / "k.parquet"
    engine = quiver.popen("run", source, "--udf", f"v={udfs}:hang(x)", "-o", out)
    wait_until(pid_file.exists, what="the worker to start")
    assert parent_of(int(pid_file.read_text())) == server
    os.kill(server, signal.SIGKILL)
    stdout, stderr = engine.communicate(timeout=60)
    result = subprocess.CompletedProcess(engine.args, engine.returncode, stdout, stderr)
    assert_failed(result, out, "its fork server", "ended without reporting")
