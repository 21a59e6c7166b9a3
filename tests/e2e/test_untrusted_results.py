"""Results a worker returns are validated in full before anything reads them.

A pyarrow UDF that builds a string array from raw buffers can hand the engine offsets that go
backwards or bytes that are not UTF-8; pyarrow's cheap validation accepts both. Unchecked, the
Parquet and CSV writers crashed on them and the Arrow writer wrote a file that fails
ValidateFull. Now every run ends with exit 1, an error naming the worker, batch, column and
problem, and nothing left behind.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from quiver_e2e import assert_failed, people_table, spec, write_table

CASES = {
    "bad_offsets": "non-monotonic offset",
    "bad_utf8": "Invalid UTF8",
}


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".arrow"])
@pytest.mark.parametrize("function", sorted(CASES))
def test_an_invalid_result_fails_the_run_cleanly(quiver, private_tmp, tmp_path, function, suffix):
    source = write_table(people_table(1000), tmp_path / "in.parquet")
    out = tmp_path / f"out{suffix}"
    process = quiver.popen(
        "run",
        source,
        "--udf",
        spec("bad", "untrusted", function, "id"),
        "--batch-rows",
        100,
        "-o",
        out,
    )
    stdout, stderr = process.communicate(timeout=60)
    result = _Completed(process.returncode, stdout, stderr)
    message = assert_failed(
        result, out, "invalid result for batch", "column 'bad'", CASES[function]
    )
    assert "worker" in message, message
    assert list(private_tmp.iterdir()) == [], "the engine's private directory was left behind"
    assert not list(Path(tempfile.gettempdir()).glob(f"quiver-{process.pid}-*"))


class _Completed:
    """What assert_failed reads of a finished process."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
