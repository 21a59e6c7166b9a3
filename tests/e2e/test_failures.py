"""`quiver run` failures: a non-zero exit, a message that says what happened, and no output."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from quiver_e2e import assert_failed, leftovers, people_table, spec, write_table


@pytest.fixture
def source(tmp_path):
    """Return a Parquet input of 1000 rows (10 batches with --batch-rows 100)."""
    return write_table(people_table(1000), tmp_path / "in.parquet")


def run_bad(quiver, source, function, *extra):
    """Run the faulty UDF `function` as UDF 'bad' over 10 batches."""
    out = source.parent / "out.parquet"
    result = quiver(
        "run",
        source,
        "--udf",
        spec("bad", "faulty", function, "id"),
        "--batch-rows",
        100,
        "-o",
        out,
        *extra,
    )
    return result, out


def assert_names_udf_and_batch(stderr: str) -> None:
    assert "'bad'" in stderr, stderr
    assert "batch" in stderr.lower(), stderr


def test_udf_raises(quiver, source):
    result, out = run_bad(quiver, source, "explode")
    stderr = assert_failed(result, out, "ValueError", "boom on purpose after 100 values")
    assert_names_udf_and_batch(stderr)
    # the traceback shows the user's functions
    assert "_explode" in stderr and "faulty.py" in stderr, stderr


def test_udf_returns_the_wrong_length(quiver, source):
    result, out = run_bad(quiver, source, "wrong_length")
    stderr = assert_failed(result, out, "99 rows")
    assert_names_udf_and_batch(stderr)


def test_udf_returns_the_wrong_type(quiver, source):
    result, out = run_bad(quiver, source, "wrong_type")
    stderr = assert_failed(result, out, "int64")
    assert_names_udf_and_batch(stderr)


@pytest.mark.parametrize("function", ["exit_sys", "exit_os"])
def test_udf_exits_mid_stream(quiver, source, function):
    # Exiting with status 0 must never pass for a shorter result.
    result, out = run_bad(quiver, source, function)
    assert_names_udf_and_batch(assert_failed(result, out))


def test_worker_killed_by_a_signal(quiver, source):
    result, out = run_bad(quiver, source, "kill_self")
    assert_names_udf_and_batch(assert_failed(result, out, "SIGKILL"))


def test_udf_hangs_past_the_batch_timeout(quiver, source):
    start = time.monotonic()
    result, out = run_bad(quiver, source, "hang", "--batch-timeout", 2)
    assert time.monotonic() - start < 30
    stderr = assert_failed(result, out)
    assert_names_udf_and_batch(stderr)
    assert "time" in stderr.lower(), stderr


def test_udf_function_missing_from_its_file(quiver, source):
    result, out = run_bad(quiver, source, "no_such_function")
    stderr = assert_failed(result, out, "no_such_function", status=2)
    assert "'bad'" in stderr, stderr


def test_python_that_does_not_exist(quiver, source, tmp_path):
    missing = tmp_path / "no" / "python3"
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--udf",
        spec("loud", "typed", "shout", "name"),
        "--python",
        missing,
        "-o",
        out,
    )
    assert_failed(result, out, str(missing))


def test_missing_input_file(quiver, tmp_path):
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", "nowhere.parquet", "--udf", spec("loud", "typed", "shout", "name"), "-o", out
    )
    assert_failed(result, out, "nowhere.parquet", "does not exist")


def test_corrupt_input_file(quiver, tmp_path):
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(os.urandom(4096))
    out = tmp_path / "out.parquet"
    result = quiver("run", corrupt, "--udf", spec("loud", "typed", "shout", "name"), "-o", out)
    assert_failed(result, out, str(corrupt), "Parquet")


def test_unknown_column_is_a_bad_command_line(quiver, source, tmp_path):
    out = tmp_path / "out.parquet"
    result = quiver("run", source, "--udf", spec("loud", "typed", "shout", "nmae"), "-o", out)
    stderr = assert_failed(
        result, out, "'nmae'", "did you mean 'name'?", "id, name, value, city", status=2
    )
    assert "worker" not in stderr, stderr


def test_missing_udf_file_is_a_bad_command_line(quiver, source, tmp_path):
    out = tmp_path / "out.parquet"
    result = quiver("run", source, "--udf", "loud=nope.py:shout(name)", "-o", out)
    assert_failed(result, out, str(tmp_path / "nope.py"), "does not exist", status=2)


def test_misspelled_function_is_refused_before_a_worker_starts(quiver, source, tmp_path):
    out = tmp_path / "out.parquet"
    udf = spec("loud", "typed", "shuot", "name")
    stderr = assert_failed(
        quiver("run", source, "--udf", udf, "-o", out),
        out,
        "has no function 'shuot'",
        "did you mean 'shout'?",
        status=2,
    )
    assert "_quiver_udf" not in stderr and "worker" not in stderr, stderr


def test_grouped_kinds_refuse_unknown_columns_the_same_way(quiver, source, tmp_path):
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--group-by",
        "ctiy",
        "--agg",
        spec("n", "kinds", "count_arrow", "value"),
        "-o",
        out,
    )
    stderr = assert_failed(result, out, "'ctiy'", "did you mean 'city'?", status=2)
    assert "worker" not in stderr, stderr


def test_bad_spec_points_at_the_problem(quiver, source, tmp_path):
    out = tmp_path / "out.parquet"
    result = quiver("run", source, "--udf", "x=f.py:g(a,", "-o", out)
    assert_failed(
        result, out, "expected an argument at position 12:\n  x=f.py:g(a,\n             ^", status=2
    )


def test_unknown_compute_function(quiver, source, tmp_path):
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--udf", spec("loud", "typed", "shout", "utf8_uper(name)"), "-o", out
    )
    assert_failed(result, out, "unknown Arrow compute function 'utf8_uper'", "utf8_upper", status=2)


def test_usage_errors_exit_2(quiver, source, tmp_path):
    out = tmp_path / "out.parquet"
    assert_failed(quiver("run", source, "-o", out), out, "--udf", status=2)
    assert_failed(
        quiver("run", source, "--udf", spec("loud", "typed", "shout", "name")),
        out,
        "-o OUTPUT",
        status=2,
    )
    assert_failed(
        quiver(
            "run",
            source,
            "--udf",
            spec("loud", "typed", "shout", "name"),
            "-o",
            tmp_path / "out.json",
        ),
        tmp_path / "out.json",
        "--output-format",
        status=2,
    )
    for flag in ("--workers", "--max-in-flight", "--batch-rows", "--batch-bytes"):
        udf = spec("loud", "typed", "shout", "name")
        result = quiver("run", source, "--udf", udf, flag, "0", "-o", out)
        assert_failed(result, out, f"{flag} must be at least 1, not 0", status=2)
    assert_failed(quiver("bogus"), out, status=2)


def test_an_existing_output_survives_a_failed_run(quiver, source):
    out = source.parent / "out.parquet"
    out.write_bytes(b"precious")
    result = quiver(
        "run",
        source,
        "--udf",
        spec("bad", "faulty", "explode", "id"),
        "--batch-rows",
        100,
        "-o",
        out,
    )
    assert result.returncode == 1
    assert out.read_bytes() == b"precious"
    assert leftovers(out.parent) == []


def test_interrupt_removes_the_partial_output(quiver, tmp_path):
    source = write_table(people_table(4000), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    process = quiver.popen(
        "run", source, "--udf", spec("s", "faulty", "slow", "id"), "--batch-rows", 10, "-o", out
    )
    try:
        deadline = time.monotonic() + 30
        while not leftovers(tmp_path):  # the temporary output exists once batches flow
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no temporary output appeared"
            time.sleep(0.05)
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr, stderr
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_interrupt_while_a_udf_hangs(quiver, source, tmp_path):
    out = tmp_path / "out.parquet"
    process = quiver.popen(
        "run", source, "--udf", spec("bad", "faulty", "hang", "id"), "--batch-rows", 100, "-o", out
    )
    try:
        deadline = time.monotonic() + 30
        while not leftovers(tmp_path):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no temporary output appeared"
            time.sleep(0.05)
        time.sleep(0.5)  # the UDF is now asleep inside batch 2
        start = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert time.monotonic() - start < 10
    assert not out.exists()
    assert leftovers(tmp_path) == []
    # the worker stuck in the UDF is gone too (its command line names quiver's pid)
    workers = subprocess.run(["pgrep", "-f", f"quiver-{process.pid}-"], capture_output=True)
    assert workers.stdout == b"", workers.stdout
