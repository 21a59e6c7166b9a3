"""The output never replaces the input by accident, and killed runs' leftovers go away."""

from __future__ import annotations

import subprocess

from quiver_e2e import assert_ok, leftovers, people_table, read_table, spec, write_table


def dead_pid() -> int:
    """Return the PID of a process that has exited and been reaped."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_output_equal_to_the_input_is_refused_unless_forced(quiver, tmp_path):
    source = write_table(people_table(20), tmp_path / "people.csv")
    before = source.read_bytes()
    udf = spec("loud", "typed", "shout", "name")
    refused = quiver("run", source, "--udf", udf, "-o", tmp_path / "." / "people.csv")
    assert refused.returncode == 2, refused.stderr
    assert "is the input file" in refused.stderr and "--force" in refused.stderr, refused.stderr
    assert source.read_bytes() == before

    forced = quiver("run", source, "--udf", udf, "-o", source, "--force")
    assert_ok(forced)
    table = read_table(source)
    assert table.column("loud").to_pylist()[:2] == ["PERSON 0", "PERSON 1"]
    assert leftovers(tmp_path) == []


def test_the_next_run_removes_a_killed_runs_temporary_output(quiver, tmp_path):
    source = write_table(people_table(20), tmp_path / "in.parquet")
    stale = tmp_path / f".out.parquet.quiver-tmp-{dead_pid()}"
    stale.write_bytes(b"half a file from a run killed with SIGKILL")
    other = tmp_path / f".other.parquet.quiver-tmp-{dead_pid()}"
    other.write_bytes(b"not this output's")
    result = quiver(
        "run", source, "--udf", spec("loud", "typed", "shout", "name"), "-o", "out.parquet"
    )
    assert_ok(result)
    assert not stale.exists()
    assert other.exists()
    assert read_table(tmp_path / "out.parquet").num_rows == 20
