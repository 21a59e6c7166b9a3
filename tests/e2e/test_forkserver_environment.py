"""A worker forked by the fork server starts as a fresh process would: each variable a Python
process reads at start gives the same UDF output through the fork server as with `--no-daemon`,
after the user changed it since the server started."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest
from quiver_e2e import assert_ok, read_table, write_table
from test_forkserver_runs import servers_in, wait_until

UDFS = """
import datetime, locale, sys, warnings
import pyarrow as pa
import quiver

def _one(x, value):
    return pa.array([str(value)] * len(x))

@quiver.udf(returns="string")
def local_epoch(x: pa.Array) -> pa.Array:
    return _one(x, datetime.datetime.fromtimestamp(0).isoformat())

@quiver.udf(returns="string")
def encoding(x: pa.Array) -> pa.Array:
    return _one(x, (locale.getpreferredencoding(False), sys.flags.utf8_mode))

@quiver.udf(returns="string")
def string_hash(x: pa.Array) -> pa.Array:
    return _one(x, hash("quiver"))

@quiver.udf(returns="string")
def optimisation(x: pa.Array) -> pa.Array:
    return _one(x, (sys.flags.optimize, __debug__))

@quiver.udf(returns="string")
def warning_options(x: pa.Array) -> pa.Array:
    return _one(x, (sys.warnoptions, [str(f[0]) for f in warnings.filters[:2]]))

@quiver.udf(returns="int64")
def parent(x: pa.Array) -> pa.Array:
    import os
    return pa.array([os.getppid()] * len(x), pa.int64())
"""

CASES = [
    ("TZ", "Asia/Tokyo", "local_epoch"),
    ("LC_ALL", "C", "encoding"),
    ("PYTHONHASHSEED", "12345", "string_hash"),
    ("PYTHONOPTIMIZE", "1", "optimisation"),
    ("PYTHONWARNINGS", "error::DeprecationWarning", "warning_options"),
]
BASELINE = {
    "TZ": "UTC",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "1",
    "PYTHONOPTIMIZE": "",
    "PYTHONWARNINGS": "",
}


@pytest.fixture
def fork_dir(quiver):
    """A fresh private fork-server directory for this test; its servers are stopped after."""
    directory = Path(tempfile.mkdtemp(prefix="qfs-"))
    quiver.env["QUIVER_FORKSERVER_DIR"] = str(directory)
    quiver.env.pop("QUIVER_NO_DAEMON", None)
    for name, value in BASELINE.items():
        quiver.env[name] = value
    yield directory
    for pid in servers_in(directory):
        os.kill(pid, signal.SIGTERM)
    shutil.rmtree(directory, ignore_errors=True)


def value(quiver, tmp_path, function, *extra):
    """Run `function(x)` over a 1-row file; return its one value."""
    udfs = tmp_path / "env_udfs.py"
    if not udfs.exists():
        udfs.write_text(UDFS)
    source = write_table(pa.table({"x": pa.array([1], pa.int64())}), tmp_path / "one.parquet")
    out = tmp_path / "out.parquet"
    result = quiver("run", source, "--udf", f"v={udfs}:{function}(x)", "-o", out, "--force", *extra)
    assert_ok(result)
    return read_table(out).column("v")[0].as_py()


def forked_value(quiver, tmp_path, fork_dir, function):
    """Return `function`'s value from a worker the fork server forked (starting one if this
    configuration has none yet)."""
    for _ in range(40):
        if value(quiver, tmp_path, "parent") in servers_in(fork_dir):
            return value(quiver, tmp_path, function)
        wait_until(lambda: servers_in(fork_dir), 60, "a fork server")
    raise AssertionError("no run was forked from the fork server")


@pytest.mark.parametrize(("name", "changed", "function"), CASES, ids=[c[0] for c in CASES])
def test_a_forked_worker_sees_the_runs_value(quiver, tmp_path, fork_dir, name, changed, function):
    forked_value(quiver, tmp_path, fork_dir, function)  # the server starts under the baseline
    quiver.env[name] = changed
    fresh = value(quiver, tmp_path, function, "--no-daemon")
    assert fresh != value_with_baseline(quiver, tmp_path, name, function)
    assert forked_value(quiver, tmp_path, fork_dir, function) == fresh


def value_with_baseline(quiver, tmp_path, name, function):
    """Return `function`'s value in a fresh worker under the baseline value of `name`."""
    changed = quiver.env[name]
    quiver.env[name] = BASELINE[name]
    try:
        return value(quiver, tmp_path, function, "--no-daemon")
    finally:
        quiver.env[name] = changed


def test_a_relative_fork_server_directory_is_resolved_once_for_both_sides(quiver, tmp_path):
    # The runs start in a short directory of their own: under pytest-xdist, tmp_path is long
    # enough to push the server's socket past a Unix socket path's 107 bytes, and a run then
    # (rightly) goes without the fork server.
    run_directory = Path(tempfile.mkdtemp(prefix="qfs-", dir="/tmp"))
    quiver.cwd = run_directory
    quiver.env["QUIVER_FORKSERVER_DIR"] = "relative-fs"  # under the run's directory
    quiver.env.pop("QUIVER_NO_DAEMON", None)
    directory = run_directory / "relative-fs"
    try:
        value(quiver, tmp_path, "parent")  # starts the server
        wait_until(lambda: list(directory.glob("*.sock")), 60, "the fork server's socket")
        assert value(quiver, tmp_path, "parent") in servers_in(directory)
    finally:
        for pid in servers_in(directory):
            os.kill(pid, signal.SIGTERM)
        shutil.rmtree(run_directory, ignore_errors=True)
