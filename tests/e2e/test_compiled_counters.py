"""The C++ and Rust SDKs' UDF counters, summed by `quiver run` into its summary and --metrics.

Each SDK's example worker has `count_even(int64)`, which returns its argument and adds the number
of even values of each batch to its own counter `even_values` (quiver::sdk::Counter in C++,
quiver_worker::counter in Rust); the run's total must be the input's count of even numbers
whatever the workers, batches and transport.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from quiver_e2e import ROOT, assert_ok, write_table

ROWS = 10_001
BATCH_ROWS = 1_000
EVEN = len(range(0, ROWS, 2))

CPP_WORKER = ROOT / "build" / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker"
RUST_WORKER = ROOT / "rust" / "target" / "release" / "examples" / "udfs"
WORKERS = {
    "c++": (
        Path(os.environ.get("QUIVER_CPP_WORKER", CPP_WORKER)),
        "cmake --build build --target quiver_example_udf_worker",
    ),
    "rust": (
        Path(os.environ.get("QUIVER_RUST_WORKER", RUST_WORKER)),
        "cd rust && cargo build --release --example udfs",
    ),
}


@pytest.fixture(params=sorted(WORKERS))
def worker(request) -> Path:
    binary, build = WORKERS[request.param]
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.skip(f"no {request.param} example worker at {binary}: {build}")
    return binary


def numbers(tmp_path: Path) -> Path:
    table = pa.table({"x": pa.array(range(ROWS), type=pa.int64())})
    return write_table(table, tmp_path / "in.parquet", batch_rows=BATCH_ROWS)


@pytest.mark.parametrize("transport", ["uds", "grpc"])
def test_the_sdk_counter_is_summed_over_workers_and_batches(quiver, tmp_path, worker, transport):
    result = quiver(
        "run", numbers(tmp_path), "--runtime", f"sdk={worker}", "--udf", "y=sdk:count_even(x)",
        "--workers", 2, "--batch-rows", BATCH_ROWS, "--transport", transport,
        "-o", "out.parquet", "--metrics", "metrics.json",
    )  # fmt: skip
    assert_ok(result)
    assert pq.read_table(tmp_path / "out.parquet").column("y").to_pylist() == list(range(ROWS))
    [group] = json.loads((tmp_path / "metrics.json").read_text())["groups"]
    assert group["counters"] == {"even_values": EVEN}
    assert sum(w["counters"].get("even_values", 0) for w in group["workers"]) == EVEN
    assert len(group["workers"]) == 2
    assert f"counter  even_values = {EVEN:,} (y)" in result.stderr


def test_a_udf_without_counters_reports_none(quiver, tmp_path, worker):
    result = quiver(
        "run", numbers(tmp_path), "--runtime", f"sdk={worker}", "--udf", "y=sdk:identity(x)",
        "-o", "out.parquet", "--metrics", "metrics.json",
    )  # fmt: skip
    assert_ok(result)
    [group] = json.loads((tmp_path / "metrics.json").read_text())["groups"]
    assert group["counters"] == {}


def test_the_sdk_counter_reaches_the_run_through_sparks_protocol(quiver, tmp_path, worker):
    # The worker in Spark's dialect reports `counter.even_values` in its FinishResponse metrics.
    result = quiver(
        "run", numbers(tmp_path), "--runtime", f"sp=spark:{worker} --dialect spark",
        "--udf", "y=sp:count_even(x)", "--workers", 2, "--batch-rows", BATCH_ROWS,
        "-o", "out.parquet", "--metrics", "metrics.json",
    )  # fmt: skip
    assert_ok(result)
    assert pq.read_table(tmp_path / "out.parquet").column("y").to_pylist() == list(range(ROWS))
    [group] = json.loads((tmp_path / "metrics.json").read_text())["groups"]
    assert group["counters"] == {"even_values": EVEN}
