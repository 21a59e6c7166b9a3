"""`quiver run` on the C++ and Rust example workers started with `--dialect spark`.

docs/spark-protocol.md: the compiled SDKs serve Spark's UdfWorker protocol, and quiver's engine
drives them with `--runtime 'NAME=spark:COMMAND'` (section 9). Real worker processes on real
sockets; a worker that is not built is skipped, saying how to build it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.compute as pc
import pytest
from quiver_e2e import ROOT, assert_failed, assert_ok, people_table, read_table, write_table

WORKERS = {
    "cpp": (
        ROOT / "build" / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker",
        "ninja -C build quiver_example_udf_worker",
        "std::domain_error",
    ),
    "rust": (
        ROOT / "rust" / "target" / "release" / "examples" / "udfs",
        "(cd rust && cargo build --release --examples)",
        "ValueError",
    ),
}


@pytest.fixture(params=sorted(WORKERS))
def worker(request) -> tuple[Path, str]:
    """The example worker's path and the error class its raise_error raises."""
    path, build, error_class = WORKERS[request.param]
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"no {request.param} example worker at {path}: {build}")
    return path, error_class


@pytest.fixture
def source(tmp_path):
    """Return a Parquet input of 1000 rows (10 batches with --batch-rows 100)."""
    return write_table(people_table(1000), tmp_path / "in.parquet")


def test_two_udfs_on_a_compiled_spark_worker_give_each_its_column(quiver, source, worker):
    path, _ = worker
    out = source.parent / "out.parquet"
    result = quiver(
        "run",
        source,
        "--runtime",
        f"sp=spark:{path} --dialect spark",
        "--udf",
        "loud=sp:upper(name)",
        "--udf",
        "next_id=sp:add_one(id)",
        "--select",
        "id",
        "--batch-rows",
        100,
        "--workers",
        2,
        "-o",
        out,
    )
    assert_ok(result)
    table = read_table(out)
    people = people_table(1000)
    assert table.column_names == ["id", "loud", "next_id"]
    assert table.column("loud").to_pylist() == pc.utf8_upper(people.column("name")).to_pylist()
    assert table.column("next_id").to_pylist() == [i + 1 for i in people.column("id").to_pylist()]


def test_a_raising_symbol_on_a_compiled_spark_worker_is_a_user_error(quiver, source, worker):
    path, error_class = worker
    out = source.parent / "out.parquet"
    result = quiver(
        "run",
        source,
        "--runtime",
        f"sp=spark:{path} --dialect spark",
        "--udf",
        "bad=sp:raise_error(id)",
        "-o",
        out,
    )
    assert_failed(
        result, out, f"UDF 'bad' raised {error_class}: raise_error always fails", "user error"
    )


def test_a_symbol_the_worker_does_not_register_is_named(quiver, source, worker):
    path, _ = worker
    out = source.parent / "out.parquet"
    result = quiver(
        "run",
        source,
        "--runtime",
        f"sp=spark:{path} --dialect spark",
        "--udf",
        "h=sp:hash_name(id)",
        "-o",
        out,
    )
    # The worker's own list of what it registers (in order, whatever else it gains).
    assert_failed(result, out, "'h'", "hash_name", "add_one, ", "identity, raise_error, upper")
