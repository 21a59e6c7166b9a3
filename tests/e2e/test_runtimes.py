"""`quiver run` with UDFs of several runtimes: Python, the C++ example worker, the Rust one.

The compiled workers are the repository's examples (cpp/examples/udf_worker, rust/quiver-worker's
`udfs` example); a test that needs one that is not built is skipped, saying how to build it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from quiver_e2e import ROOT, assert_failed, people_table, spec, udf_file, write_table

CPP_WORKER = Path(
    os.environ.get(
        "QUIVER_CPP_WORKER",
        ROOT / "build" / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker",
    )
)
RUST_WORKER = Path(
    os.environ.get("QUIVER_RUST_WORKER", ROOT / "rust" / "target" / "release" / "examples" / "udfs")
)


def _built(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


@pytest.fixture
def cpp_worker() -> Path:
    if not _built(CPP_WORKER):
        pytest.skip(
            f"no C++ example worker at {CPP_WORKER}: ninja -C build quiver_example_udf_worker"
        )
    return CPP_WORKER


@pytest.fixture
def source(tmp_path):
    """Return a Parquet input of 1000 rows (10 batches with --batch-rows 100)."""
    return write_table(people_table(1000), tmp_path / "in.parquet")


def test_python_cpp_and_rust_udfs_in_one_run(quiver, source, cpp_worker):
    out = source.parent / "out.parquet"
    runtimes = ["--runtime", f"cc={cpp_worker}"]
    udfs = [
        "--udf",
        "up=cc:upper(name)",
        "--udf",
        spec("loud", "frames", "shout", "name"),
        "--udf",
        "next=cc:add_one(id)",
        "--udf",
        f"taxed=py:{udf_file('frames')}:with_tax(value)",
    ]
    with_rust = _built(RUST_WORKER)
    if with_rust:
        runtimes += ["--runtime", f"rs={RUST_WORKER}"]
        udfs += ["--udf", "rs_up=rs:upper(city)"]
    result = quiver(
        "run",
        source,
        *runtimes,
        *udfs,
        "--select",
        "id",
        "--batch-rows",
        100,
        "--workers",
        2,
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    table = pq.read_table(out)
    people = people_table(1000)
    expected_columns = ["id", "up", "loud", "next", "taxed"] + (["rs_up"] if with_rust else [])
    assert table.column_names == expected_columns
    assert table["id"].equals(people["id"])
    assert table["up"].equals(pc.utf8_upper(people["name"]))
    assert table["loud"].to_pylist() == [n.upper() + "!" for n in people["name"].to_pylist()]
    assert table["next"].equals(pc.add(people["id"], 1))
    assert table["taxed"].to_pylist() == pytest.approx(
        [v * 1.2 for v in people["value"].to_pylist()]
    )
    if with_rust:
        assert table["rs_up"].equals(pc.utf8_upper(people["city"]))


def test_only_compiled_udfs_need_no_python(quiver, source, cpp_worker):
    out = source.parent / "out.arrow"
    result = quiver(
        "run",
        source,
        "--runtime",
        f"cc={cpp_worker}",
        "--udf",
        "same=cc:identity(city)",
        "--python",
        "/no/such/python",
        "-o",
        out,
    )
    assert result.returncode == 0, result.stderr
    with pa.ipc.open_file(out) as reader:
        table = reader.read_all()
    assert table["same"].equals(people_table(1000)["city"])


def test_runtime_command_that_does_not_exist(quiver, source):
    out = source.parent / "out.parquet"
    result = quiver(
        "run", source, "--runtime", "cc=./no-such-worker", "--udf", "x=cc:upper(name)", "-o", out
    )
    assert_failed(result, out, "--runtime 'cc'", "./no-such-worker", "does not exist")


def test_runtime_that_exits_before_hello(quiver, source, tmp_path):
    worker = tmp_path / "quits.sh"
    worker.write_text("#!/bin/sh\necho 'no quiver here' >&2\nexit 3\n")
    worker.chmod(0o755)
    out = source.parent / "out.parquet"
    result = quiver(
        "run", source, "--runtime", f"cc={worker}", "--udf", "x=cc:upper(name)", "-o", out
    )
    assert_failed(
        result, out, "runtime 'cc'", str(worker), "'x'", "exited with status 3", "no quiver here"
    )


WRONG_VERSION_WORKER = """\
import os, sys
from quiver.protocol.framing import encode_control_frame
from quiver.transport.uds import UdsConnection
from quiver.v1 import quiver_pb2 as pb

endpoint = sys.argv[sys.argv.index("--connection") + 1]
worker_id = sys.argv[sys.argv.index("--id") + 1]
connection = UdsConnection.connect(endpoint)
hello = pb.WorkerMessage(hello=pb.Hello(
    protocol_version=7, worker_id=worker_id, runtime="fake",
    secret=os.environ["QUIVER_WORKER_SECRET"].encode(), pid=os.getpid()))
connection.send_message(hello)
connection.sock.recv(1)
"""


def test_runtime_that_speaks_another_protocol_version(quiver, source, tmp_path):
    script = tmp_path / "old_worker.py"
    script.write_text(WRONG_VERSION_WORKER)
    out = source.parent / "out.parquet"
    result = quiver(
        "run",
        source,
        "--runtime",
        f"old={sys.executable} {script}",
        "--udf",
        "x=old:upper(name)",
        "-o",
        out,
    )
    assert_failed(result, out, "runtime 'old'", "protocol version 7", "'x'")


def test_udf_the_worker_did_not_register(quiver, source, cpp_worker):
    out = source.parent / "out.parquet"
    result = quiver(
        "run", source, "--runtime", f"cc={cpp_worker}", "--udf", "h=cc:hash_name(name)", "-o", out
    )
    assert_failed(result, out, "runtime 'cc'", str(cpp_worker), "'h'", "hash_name")


def test_undeclared_runtime_is_a_python_module(quiver, source):
    out = source.parent / "out.parquet"
    # `rs` is not declared: rs:upper is a Python module reference, which does not import.
    result = quiver("run", source, "--udf", "x=rs:upper(name)", "-o", out)
    assert_failed(result, out, "'x'", "rs")


def test_runtime_grammar_errors_are_usage_errors(quiver, source):
    out = source.parent / "out.parquet"
    for runtime, needle in [
        ("py=python3", "built-in Python runtime"),
        ("no command", "NAME=COMMAND"),
        ("cc=", "no command"),
    ]:
        result = quiver("run", source, "--runtime", runtime, "--udf", "x=cc:upper(name)", "-o", out)
        assert_failed(result, out, needle, status=2)
