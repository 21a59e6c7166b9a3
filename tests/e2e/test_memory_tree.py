"""A worker's memory cap counts its children, and a cap too small to start a worker says so."""

from __future__ import annotations

import pyarrow as pa
from quiver_e2e import assert_failed, people_table, spec, write_table


def test_memory_held_by_a_udfs_child_counts_against_the_cap(quiver, tmp_path):
    source = write_table(people_table(200), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--udf", spec("h", "memory_children", "child_hoards", "id"),
        "--batch-rows", 50, "--worker-memory", "300M", "--no-daemon", "-o", out,
    )  # fmt: skip
    assert_failed(result, out, "over its cap of 300 MiB", "--worker-memory")


def test_a_cap_too_small_to_start_a_worker_names_the_cap(quiver, tmp_path):
    source = write_table(pa.table({"id": pa.array([1, 2], pa.int64())}), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--udf", spec("h", "memory", "hoard", "id"), "--worker-memory", "4M",
        "--no-daemon", "-o", out,
    )  # fmt: skip
    stderr = assert_failed(
        result, out, "over its cap of 4 MiB", "too small for the worker to start"
    )
    assert "is the quiver Python package installed" not in stderr, stderr
