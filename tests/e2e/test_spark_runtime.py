"""`quiver run --runtime 'NAME=spark:COMMAND'`: the engine drives a worker in Spark's dialect.

docs/spark-protocol.md, section 9. The worker is the Python worker with `--dialect spark` (real
process, real socket); the faults a real worker does not commit come from
fake/spark_faulty_worker.py, one rule each.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from quiver_e2e import assert_failed, assert_ok, people_table, read_table, udf_file, write_table

PYTHON_SPARK = f"spark+python:{sys.executable} -m quiver.worker --dialect spark"
FAULTY = Path(__file__).resolve().parent / "fake" / "spark_faulty_worker.py"


@pytest.fixture
def source(tmp_path):
    """Return a Parquet input of 1000 rows (10 batches with --batch-rows 100)."""
    return write_table(people_table(1000), tmp_path / "in.parquet")


def test_two_udfs_on_spark_workers_give_each_its_column(quiver, source):
    out = source.parent / "out.parquet"
    result = quiver(
        "run",
        source,
        "--runtime",
        f"sp={PYTHON_SPARK}",
        "--udf",
        f"loud=sp:{udf_file('frames')}:shout(name)",
        "--udf",
        f"taxed=sp:{udf_file('frames')}:with_tax(value)",
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
    assert table.column_names == ["id", "loud", "taxed"]
    assert table.column("id").to_pylist() == people.column("id").to_pylist()
    shouted = pc.binary_join_element_wise(pc.utf8_upper(people.column("name")), "!", "")
    assert table.column("loud").to_pylist() == shouted.to_pylist()
    assert table.column("taxed").type == pa.float64()
    assert table.num_rows == 1000


def test_a_udfs_own_counter_reaches_the_run_through_sparks_protocol(quiver, tmp_path):
    numbers = write_table(
        pa.table({"x": pa.array(range(1000), pa.int64())}), tmp_path / "n.parquet"
    )
    result = quiver(
        "run", numbers, "--runtime", f"sp={PYTHON_SPARK}",
        "--udf", f"y=sp:{udf_file('metered')}:skip_multiples_of_three(x)",
        "--batch-rows", 100, "-o", tmp_path / "out.parquet", "--metrics", tmp_path / "m.json",
    )  # fmt: skip
    assert_ok(result)
    [group] = json.loads((tmp_path / "m.json").read_text())["groups"]
    assert group["counters"] == {"rows_skipped": len(range(0, 1000, 3)), "batches_seen": 10}


def test_a_udf_that_raises_on_a_spark_worker_is_a_user_error(quiver, source):
    out = source.parent / "out.parquet"
    result = quiver(
        "run",
        source,
        "--runtime",
        f"sp={PYTHON_SPARK}",
        "--udf",
        "bad=sp:quiver.conformance_udfs:raise_error(id)",
        "-o",
        out,
    )
    assert_failed(
        result, out, "UDF 'bad' raised ValueError: raise_error always fails", "user error"
    )


def test_an_unknown_payload_format_names_the_formats_the_worker_takes(quiver, source):
    out = source.parent / "out.parquet"
    result = quiver(
        "run",
        source,
        "--runtime",
        f"sp=spark:{sys.executable} -m quiver.worker --dialect spark",
        "--udf",
        "up=sp:upper(name)",
        "-o",
        out,
    )
    assert_failed(result, out, "'symbol'", "worker error")


@pytest.mark.parametrize(
    ("fault", "needles"),
    [
        (
            "no_terminator",
            ["ended the Execute stream of UDF 'same'", "without FinishResponse or CancelResponse"],
        ),
        ("data_before_init", ["sent DataResponse before InitResponse", "protocol violation"]),
        ("wrong_rows", ["returned 101 rows for batch 0 of 100 rows", "wrong row count"]),
        ("bad_ipc", ["DataResponse.data that is not one Arrow IPC stream", "protocol violation"]),
        ("wrong_name", ["named its result column 'other'", "protocol violation"]),
        ("no_pid", ['no metrics["pid"]']),
    ],
)
def test_a_spark_worker_that_breaks_a_rule_fails_the_run_naming_it(quiver, source, fault, needles):
    out = source.parent / "out.parquet"
    result = quiver(
        "run",
        source,
        "--runtime",
        f"sp=spark:{sys.executable} {FAULTY} {fault}",
        "--udf",
        "same=sp:identity(id)",
        "--batch-rows",
        100,
        "-o",
        out,
    )
    assert_failed(result, out, *needles)


def test_a_spark_worker_that_answers_a_batch_twice_is_caught(quiver, source):
    out = source.parent / "out.parquet"
    result = quiver(
        "run",
        source,
        "--runtime",
        f"sp=spark:{sys.executable} {FAULTY} extra_answer",
        "--udf",
        "same=sp:identity(id)",
        "--batch-rows",
        100,
        "-o",
        out,
    )
    assert_failed(result, out, "protocol violation")
