"""What a run killed with SIGKILL leaves behind is removed by the next run, and a private directory
that cannot be made is reported with the operating system's reason."""

from __future__ import annotations

import os
import subprocess

import pyarrow as pa
from quiver_e2e import assert_failed, assert_ok, spec, write_table


def _source(tmp_path):
    return write_table(pa.table({"name": pa.array(["a", "b"])}), tmp_path / "in.parquet")


def test_the_next_run_removes_the_private_directory_of_a_killed_run(quiver, tmp_path, private_tmp):
    source = _source(tmp_path)
    # A dead engine's directory (its pid no longer runs), as SIGKILL leaves it, with a socket.
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = private_tmp / f"quiver-{dead.pid}-Ab3dEf"
    leftover.mkdir(mode=0o700)
    (leftover / "w1.sock").write_bytes(b"")
    # A live process's directory is left alone, whatever it holds.
    alive = private_tmp / f"quiver-{os.getpid()}-Zz9yXw"
    alive.mkdir(mode=0o700)
    other = private_tmp / "quiver-notes"
    other.mkdir()
    result = quiver("run", source, "--udf", spec("y", "untrusted", "echo", "name"), "-o",
                    tmp_path / "out.parquet", "--no-daemon")  # fmt: skip
    assert_ok(result)
    assert not leftover.exists(), "the killed run's private directory is still there"
    assert alive.exists() and other.exists()


def test_a_private_directory_that_cannot_be_made_says_why(quiver, tmp_path):
    quiver.env["TMPDIR"] = str(tmp_path / "missing")
    out = tmp_path / "out.parquet"
    result = quiver("run", _source(tmp_path), "--udf", spec("y", "untrusted", "echo", "name"),
                    "-o", out, "--no-daemon")  # fmt: skip
    assert_failed(result, out, "cannot create a private socket directory",
                  "No such file or directory", "set TMPDIR")  # fmt: skip
