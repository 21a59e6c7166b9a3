"""--batch-bytes: the batches a worker receives stay under a byte cap as well as --batch-rows."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest
from quiver_e2e import assert_ok, read_table, spec, write_table

MB = 1_000_000
MIB = 1 << 20


def big_strings(rows: int) -> pa.Table:
    """Rows of distinct 1 MB strings (so that Parquet cannot shrink them into a dictionary)."""
    values = [os.urandom(MB // 2).hex() for _ in range(rows)]
    return pa.table({"id": pa.array(range(rows), pa.int64()), "s": pa.array(values, pa.string())})


@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> pa.Table:
    return big_strings(12)


def shapes(quiver, tmp_path, table: pa.Table, *options: object) -> pa.Table:
    """Run the reporting UDFs over `table` (one row group) and return their output."""
    source = write_table(table, tmp_path / "in.parquet", batch_rows=table.num_rows)
    out = tmp_path / "out.parquet"
    result = quiver(
        "run",
        source,
        "--udf",
        spec("rows", "batches", "batch_rows", "s"),
        "--udf",
        spec("bytes", "batches", "batch_bytes", "s"),
        "--select",
        "id",
        "-o",
        out,
        *options,
    )
    assert_ok(result)
    got = read_table(out)
    assert got.column("id").to_pylist() == list(range(table.num_rows))  # every row, in order
    return got


def test_one_mb_strings_reach_the_worker_in_batches_under_the_cap(quiver, tmp_path, big_input):
    got = shapes(quiver, tmp_path, big_input, "--batch-bytes", "3MiB")
    rows = got.column("rows").to_pylist()
    sizes = got.column("bytes").to_pylist()
    assert max(sizes) <= 3 * MIB
    assert max(rows) == 3  # three 1 MB strings fit in 3 MiB, four do not
    assert sum(1 for _ in rows) == big_input.num_rows


def test_a_row_larger_than_the_cap_goes_alone(quiver, tmp_path, big_input):
    got = shapes(quiver, tmp_path, big_input, "--batch-bytes", "100KiB")
    assert set(got.column("rows").to_pylist()) == {1}
    assert min(got.column("bytes").to_pylist()) > 100 * 1024


def test_the_row_cap_still_holds_under_the_byte_cap(quiver, tmp_path, big_input):
    got = shapes(quiver, tmp_path, big_input, "--batch-bytes", "64MiB", "--batch-rows", "4")
    assert max(got.column("rows").to_pylist()) == 4


def test_the_default_cap_cuts_a_batch_of_20_mb(quiver, tmp_path, big_input):
    got = shapes(quiver, tmp_path, big_input, "--batch-rows", "1000")
    sizes = got.column("bytes").to_pylist()
    assert max(sizes) <= 4 * MIB  # the default
    assert max(got.column("rows").to_pylist()) == 4


def test_small_rows_are_not_cut(quiver, tmp_path):
    table = pa.table({"id": pa.array(range(1000), pa.int64()), "s": ["x" * 10] * 1000})
    got = shapes(quiver, tmp_path, table, "--batch-rows", "1000")
    assert set(got.column("rows").to_pylist()) == {1000}


def test_a_bad_size_is_a_usage_error(quiver, tmp_path):
    source = write_table(pa.table({"s": ["a"]}), tmp_path / "in.parquet")
    result = quiver(
        "run", source, "--udf", spec("r", "batches", "batch_rows", "s"), "--batch-bytes", "lots"
    )
    assert result.returncode == 2, result.stderr
    assert "--batch-bytes" in result.stderr
