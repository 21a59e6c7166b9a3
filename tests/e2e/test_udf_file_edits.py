"""A UDF file edited between two runs runs its new code, however close together the edits are.

Python's bytecode cache (``__pycache__``) is checked by the source's mtime in whole seconds and
its size: an edit within the same second that keeps the size would run the old code. The test
gives the second edit the very mtime of the first, which is what two quick saves can produce.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pytest
from quiver_e2e import assert_ok, read_table, write_table

UDF = """import pyarrow as pa
import quiver


@quiver.udf(returns="string")
def label(x: pa.Array) -> pa.Array:
    return pa.array(["{word}"] * len(x))
"""


@pytest.mark.parametrize("daemon", [False, True], ids=["no-daemon", "fork-server"])
def test_a_udf_file_edited_within_one_second_runs_its_new_code(quiver, tmp_path, daemon):
    source = write_table(pa.table({"x": pa.array([1, 2, 3])}), tmp_path / "in.parquet")
    udf = tmp_path / "labels.py"
    out = tmp_path / "out.arrow"
    flags = [] if daemon else ["--no-daemon"]
    # As for most users, Python may write bytecode caches (the test environment may forbid it).
    quiver.env.pop("PYTHONDONTWRITEBYTECODE", None)
    run = ("run", source, "--udf", f"y={udf}:label(x)", "-q", "-o", out, *flags)
    udf.write_text(UDF.format(word="old"))
    first = os.stat(udf)
    assert_ok(quiver(*run))
    assert read_table(out).column("y").to_pylist() == ["old"] * 3
    udf.write_text(UDF.format(word="new"))  # the same size
    os.utime(udf, ns=(first.st_atime_ns, first.st_mtime_ns))
    assert os.stat(udf).st_size == first.st_size
    assert_ok(quiver(*run))
    assert read_table(out).column("y").to_pylist() == ["new"] * 3
    assert not (tmp_path / "__pycache__").exists(), "UDF files are compiled without a cache"
