"""quiver.spark on a real Spark cluster: local-cluster[2,1,1024] (two executor JVMs, each
with its own Python workers), started once for every test here (conftest.py).

Checked: results equal to `quiver run` on the same data for a Python, a C++ and a Rust UDF;
a UDF error, a timeout, a killed quiver worker (Spark runs the task again: same rows, same
checksum); warm sessions reused by a second stage; empty partitions; bad input (a missing
column, a UDF that does not import on the executors, a type Spark does not have, a runtime
missing on the executors) refused clearly, with no process left behind; the example of
docs/spark.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from spark_cluster import MARK, marked_processes

import quiver
import quiver.spark

ROOT = Path(__file__).resolve().parents[2]
UDFS = ROOT / "tests" / "spark" / "spark_job_udfs.py"
QUIVER = ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver"
CPP_WORKER = ROOT / "build" / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker"
RUST_WORKER = ROOT / "rust" / "target" / "release" / "examples" / "udfs"
ROWS = 20_000
PARTITIONS = 4


def frame(spark: Any, rows: int = ROWS, partitions: int = PARTITIONS) -> Any:
    """id, name and value over ``partitions`` partitions: the rows of :func:`table`."""
    return spark.range(0, rows, numPartitions=partitions).selectExpr(
        "id", "concat('name-', cast(id as string)) as name", "cast(id as double) * 0.5 as value"
    )


def table(rows: int = ROWS) -> pa.Table:
    ids = pa.array(range(rows), pa.int64())
    return pa.table(
        {
            "id": ids,
            "name": pc.binary_join_element_wise("name-", pc.cast(ids, pa.string()), ""),
            "value": pc.multiply(pc.cast(ids, pa.float64()), 0.5),
        }
    )


def collected(df: Any) -> list[dict[str, Any]]:
    """The DataFrame's rows as dicts, in id order."""
    return sorted((row.asDict() for row in df.collect()), key=lambda r: r["id"])


def quiver_run(tmp_path: Path, *arguments: str) -> list[dict[str, Any]]:
    """`quiver run` over the rows of :func:`table`; its output rows in id order."""
    if not QUIVER.exists():
        pytest.skip(f"the quiver command is not built ({QUIVER})")
    source, output = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(table(), source)
    subprocess.run(
        [str(QUIVER), "run", str(source), *arguments, "-o", str(output), "--quiet"],
        check=True,
        timeout=60,
        cwd=ROOT,
    )
    return sorted(pq.read_table(output).to_pylist(), key=lambda r: r["id"])


def failure(action: Any) -> str:
    """The text of the error a Spark action fails with (what the driver's user reads)."""
    with pytest.raises(Exception) as caught:
        action()
    return str(caught.value)


def marked(spark: Any) -> list[tuple[int, str]]:
    return marked_processes(spark.sparkContext.getConf().get(f"spark.executorEnv.{MARK}"))


def executor_jvms(spark: Any) -> set[int]:
    """The process ids of the cluster's executor JVMs."""
    return {pid for pid, cmdline in marked(spark) if "CoarseGrainedExecutorBackend" in cmdline}


def assert_no_orphans(spark: Any) -> None:
    """Every quiver worker of the executors still has its executor Python process."""
    processes = dict(marked(spark))
    for pid, cmdline in processes.items():
        if "quiver" not in cmdline or "pyspark" in cmdline:
            continue
        with open(f"/proc/{pid}/stat", "rb") as f:
            parent = int(f.read().rsplit(b")", 1)[1].split()[1])
        assert parent in processes, f"quiver worker {pid} ({cmdline}) lost its executor"


def test_python_udf_matches_quiver_run(cluster: Any, tmp_path: Path) -> None:
    @quiver.udf(returns="float64")
    def doubled(value: pa.Array) -> pa.Array:  # defined in a function: sent by value
        return pc.multiply(value, 2.0)

    out = quiver.spark.map(
        frame(cluster),
        udfs=[quiver.call(f"{UDFS}:shout", "name"), quiver.call(doubled, "value")],
        select=["id"],
        workers=2,
    )
    assert out.columns == ["id", "shout", "doubled"]
    expected = quiver_run(tmp_path, "--select", "id", "--udf", f"shout={UDFS}:shout(name)")
    rows = collected(out)
    assert [{"id": r["id"], "shout": r["shout"]} for r in rows] == expected
    assert len(rows) == ROWS
    assert [r["doubled"] for r in rows] == [float(r["id"]) for r in rows]


def test_cpp_udf_matches_quiver_run(cluster: Any, tmp_path: Path) -> None:
    if not CPP_WORKER.exists():
        pytest.skip(f"the C++ example worker is not built ({CPP_WORKER})")
    out = quiver.spark.map(
        frame(cluster),
        udfs=[
            quiver.spark.runtime_call("cc", "add_one", "id", name="next"),
            quiver.spark.runtime_call("cc", "upper", "name"),
        ],
        select=["id"],
        runtimes={"cc": str(CPP_WORKER)},
    )
    expected = quiver_run(
        tmp_path,
        "--select",
        "id",
        "--runtime",
        f"cc={CPP_WORKER}",
        "--udf",
        "next=cc:add_one(id)",
        "--udf",
        "upper=cc:upper(name)",
    )
    assert collected(out) == expected
    assert expected[5] == {"id": 5, "next": 6, "upper": "NAME-5"}


def test_rust_udf_and_python_udf_in_one_map(cluster: Any, tmp_path: Path) -> None:
    if not RUST_WORKER.exists():
        pytest.skip(f"the Rust example worker is not built ({RUST_WORKER})")
    out = quiver.spark.map(
        frame(cluster),
        udfs=[
            quiver.spark.runtime_call("rs", "add_one", "value", name="more"),
            quiver.call(f"{UDFS}:shout", "name"),
        ],
        select=["id"],
        runtimes={"rs": [str(RUST_WORKER)]},
    )
    expected = quiver_run(
        tmp_path,
        "--select",
        "id",
        "--runtime",
        f"rs={RUST_WORKER}",
        "--udf",
        "more=rs:add_one(value)",
        "--udf",
        f"shout={UDFS}:shout(name)",
    )
    assert out.columns == ["id", "more", "shout"]
    assert collected(out) == expected


def test_udf_error_fails_the_job_naming_the_udf_its_error_and_traceback(cluster: Any) -> None:
    out = quiver.spark.map(frame(cluster), udfs=[quiver.call(f"{UDFS}:inverse", "value")])
    text = failure(out.collect)
    assert (
        "quiver.errors.UdfError: UDF 'inverse' raised ZeroDivisionError on Spark partition 0"
        in text
    )
    assert "a value is 0" in text
    assert "The UDF's traceback" in text or "in inverse\n" in text
    assert re.search(r"on batch \d+ \(rows \d+-\d+\)", text), text
    assert_no_orphans(cluster)


def test_async_udf_with_retries_and_failing_rows(cluster: Any) -> None:
    rows = 2_000
    call = quiver.call(f"{UDFS}:twice_when_ready", "id")  # async, retried, on_error="null"
    out = quiver.spark.map(frame(cluster, rows=rows), udfs=[call], select=["id"])
    assert out.columns == ["id", "twice_when_ready", "twice_when_ready__error"]
    got = collected(out)
    assert [r["id"] for r in got] == list(range(rows))
    for r in got:
        i = r["id"]
        if i % 7 == 0:  # failed for good: null, with the error
            assert r["twice_when_ready"] is None
            assert r["twice_when_ready__error"] == f"LookupError: no answer for id {i}"
        else:  # ids divisible by 3 were busy once and answered on their retry
            assert (r["twice_when_ready"], r["twice_when_ready__error"]) == (2 * i, None)
    assert_no_orphans(cluster)


def test_timeout_names_the_udf_and_the_batch(cluster: Any) -> None:
    out = quiver.spark.map(
        frame(cluster, rows=10, partitions=1),
        udfs=[quiver.call(f"{UDFS}:slow", "value")],
        batch_timeout=1,
    )
    text = failure(out.collect)
    assert "quiver.errors.UdfTimeout: a UDF of ['slow'] took longer than batch_timeout" in text
    assert "running UDFs 'slow' on batch 0 (rows 0-9)" in text
    assert_no_orphans(cluster)


def test_killed_worker_is_run_again_without_lost_or_doubled_rows(
    cluster: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "killed"

    @quiver.udf(returns="int64")
    def kill_once(x: pa.Array) -> pa.Array:
        # Mid-partition: the batch holding row 12_345, on its first attempt only.
        if pc.any(pc.equal(x, 12_345)).as_py():
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
                os.kill(os.getpid(), 9)
            except FileExistsError:
                pass
        return x

    executors = executor_jvms(cluster)
    assert len(executors) == 2, executors
    out = quiver.spark.map(
        frame(cluster), udfs=[quiver.call(kill_once, "id", name="same")], batch_rows=1000
    )
    checksum = out.selectExpr("count(*) as n", "sum(same) as total", "sum(hash(name)) as names")
    expected = frame(cluster).selectExpr(
        "count(*) as n", "sum(id) as total", "sum(hash(name)) as names"
    )
    assert checksum.collect() == expected.collect()
    assert marker.exists(), "the UDF never killed its worker"
    assert executor_jvms(cluster) == executors, "an executor died with the quiver worker"
    assert_no_orphans(cluster)


def test_second_stage_reuses_each_executors_warm_session(cluster: Any) -> None:
    def pids() -> set[tuple[int, int]]:
        out = quiver.spark.map(
            frame(cluster),
            udfs=[
                quiver.call(f"{UDFS}:executor_pid", "id"),
                quiver.call(f"{UDFS}:worker_pid", "id"),
            ],
            select=[],
        )
        return {(r.executor_pid, r.worker_pid) for r in out.distinct().collect()}

    first, second = pids(), pids()
    assert second == first
    executors = {executor for executor, _ in first}
    # One worker started per executor Python process (workers=1), serving both stages.
    assert len(first) == len(executors) <= 2
    assert all(pid != os.getpid() for pid in executors)


def test_partitions_of_no_rows(cluster: Any) -> None:
    sparse = frame(cluster, rows=3, partitions=PARTITIONS)  # at least one partition is empty
    out = quiver.spark.map(sparse, udfs=[quiver.call(f"{UDFS}:shout", "name")], select=["id"])
    assert collected(out) == [{"id": i, "shout": f"NAME-{i}!"} for i in range(3)]
    empty = frame(cluster).where("id < 0")
    out = quiver.spark.map(empty, udfs=[quiver.call(f"{UDFS}:shout", "name")])
    assert out.collect() == []
    assert out.columns == ["id", "name", "value", "shout"]


def test_missing_column_is_refused_before_the_job(cluster: Any) -> None:
    with pytest.raises(quiver.InvalidInput, match="no column 'nmae'.*did you mean 'name'"):
        quiver.spark.map(frame(cluster), udfs=[quiver.call(f"{UDFS}:shout", "nmae")])
    with pytest.raises(quiver.InvalidInput, match="select: the DataFrame has no column 'idd'"):
        quiver.spark.map(
            frame(cluster), udfs=[quiver.call(f"{UDFS}:shout", "name")], select=["idd"]
        )


def test_type_spark_does_not_have_is_refused_before_the_job(cluster: Any) -> None:
    with pytest.raises(
        quiver.InvalidInput, match="UDF 'unsigned' returns uint64, which has no Spark"
    ):
        quiver.spark.map(frame(cluster), udfs=[quiver.call(f"{UDFS}:unsigned", "id")])


def test_udf_that_does_not_import_on_the_executors(cluster: Any, tmp_path: Path) -> None:
    # A module only the driver can import: it is on the driver's sys.path alone.
    (tmp_path / "driver_only_udfs.py").write_text(
        textwrap.dedent(
            """
            import pyarrow as pa
            import quiver

            @quiver.udf(returns="int64")
            def same(x: pa.Array) -> pa.Array:
                return x
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import driver_only_udfs

        out = quiver.spark.map(frame(cluster), udfs=[quiver.call(driver_only_udfs.same, "id")])
        text = failure(out.collect)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("driver_only_udfs", None)
    assert "UDF 'same' could not run on Spark partition" in text
    assert "driver_only_udfs" in text
    assert "addPyFile" in text
    assert_no_orphans(cluster)


def test_runtime_missing_on_the_executors(cluster: Any, tmp_path: Path) -> None:
    if not CPP_WORKER.exists():
        pytest.skip(f"the C++ example worker is not built ({CPP_WORKER})")
    # On the driver's PATH only: the executors started with the PATH the cluster had.
    (tmp_path / "driver_only_worker").symlink_to(CPP_WORKER)
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{tmp_path}{os.pathsep}{old_path}"
    try:
        out = quiver.spark.map(
            frame(cluster),
            udfs=[quiver.spark.runtime_call("cc", "add_one", "id")],
            runtimes={"cc": "driver_only_worker"},
        )
        text = failure(out.collect)
    finally:
        os.environ["PATH"] = old_path
    assert "runtime 'cc': its program 'driver_only_worker' is not found on executor" in text
    assert_no_orphans(cluster)


def test_undeclared_runtime_is_refused(cluster: Any) -> None:
    with pytest.raises(quiver.InvalidInput, match="runtime 'cc', which is not declared"):
        quiver.spark.map(frame(cluster), udfs=[quiver.spark.runtime_call("cc", "add_one", "id")])


def test_docs_example_runs(cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "docs" / "spark.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "docs/spark.md has no python example"
    monkeypatch.chdir(ROOT)  # the example names the C++ worker by a path from the root
    exec(compile(blocks[0], "docs/spark.md", "exec"), {"__name__": "__main__"})


# The libraries a manylinux wheel may take from the system (PEP 600: glibc's, the C++ runtime's
# and zlib, which every Linux distribution has).
SYSTEM_LIBRARIES = (
    "linux-vdso.so.1",
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libresolv.so.2",  # glibc's resolver, on the manylinux list; libcurl's name lookups need it
    "ld-linux-x86-64.so.2",
    "libstdc++.so.6",
    "libgcc_s.so.1",
    "libz.so.1",
)


def test_wheel_needs_nothing_outside_itself_pyarrow_and_glibc(
    wheel_env: tuple[Path, Path] | None,
) -> None:
    if wheel_env is None:
        pytest.skip("QUIVER_SPARK_EDITABLE=1: no wheel was packed")
    python, wheel = wheel_env
    assert "manylinux" in wheel.name, wheel.name
    site = Path(
        subprocess.run(
            [str(python), "-c", "import quiver, os; print(os.path.dirname(quiver.__file__))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    ).parent
    pyarrow_dir = (site / "pyarrow").resolve()
    binaries = [*site.glob("quiver/_engine*.so"), site / "quiver" / "_bin" / "quiver"]
    assert len(binaries) == 2 and all(b.is_file() for b in binaries), binaries
    for binary in binaries:
        # No LD_LIBRARY_PATH: what the binary's own RPATH finds is what a user's node finds.
        environment = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
        ldd = subprocess.run(
            ["ldd", str(binary)], check=True, capture_output=True, text=True, env=environment
        ).stdout
        for line in ldd.splitlines():
            name, _, where = line.strip().partition(" => ")
            path = where.split(" (")[0].strip()
            assert "not found" not in where, f"{binary.name}: {line}"
            if name.split()[0].split("/")[-1] in SYSTEM_LIBRARIES or not path:
                continue
            resolved = Path(path).resolve()
            inside = resolved.is_relative_to(site / "quiver.libs") or resolved.is_relative_to(
                pyarrow_dir
            )
            assert inside, f"{binary.name} loads {name} from {resolved}, outside the wheel"
    # The command starts (every library it needs loads) from the wheel alone.
    subprocess.run(
        [str(site / "quiver" / "_bin" / "quiver"), "--help"],
        check=True,
        capture_output=True,
        timeout=30,
    )


def test_executors_run_quiver_from_the_wheel(
    cluster: Any, wheel_env: tuple[Path, Path] | None
) -> None:
    if wheel_env is None:
        pytest.skip("QUIVER_SPARK_EDITABLE=1: the executors run the checkout")
    env = wheel_env[0].parent.parent

    def where(batches: Any) -> Any:
        import quiver._engine

        for _ in batches:
            yield pa.RecordBatch.from_pydict({"engine": [quiver._engine.__file__]})

    engines = {r.engine for r in frame(cluster).mapInArrow(where, "engine string").collect()}
    assert engines and all(e.startswith(str(env)) for e in engines), engines
    out = quiver.spark.map(frame(cluster), udfs=[quiver.call(f"{UDFS}:quiver_location", "id")])
    workers = {r.quiver_location for r in out.select("quiver_location").distinct().collect()}
    assert workers and all(w.startswith(str(env)) for w in workers), workers


def test_grouped_map_over_group_by_matches_a_session(cluster: Any) -> None:
    df = frame(cluster).selectExpr("cast(id % 7 as string) as k", "value as x")
    out = quiver.spark.apply(df.groupBy("k"), f"{UDFS}:demean")
    assert out.columns == ["k", "x", "centred"]
    rows = table()
    keys = pc.cast(pa.array([i % 7 for i in rows["id"].to_pylist()]), pa.string())
    local = pa.table({"k": keys, "x": rows["value"]})
    with quiver.Session(workers=1) as session:
        expected = session.apply(local, f"{UDFS}:demean", group_by="k").read_all()
    key = lambda r: (r["k"], r["x"])  # noqa: E731
    assert sorted(collected_rows(out), key=key) == sorted(expected.to_pylist(), key=key)


def test_grouped_map_refuses_an_expression_key(cluster: Any) -> None:
    df = frame(cluster)
    with pytest.raises(quiver.InvalidInput, match="groups by columns"):
        quiver.spark.apply(df.groupBy(df.id % 2), f"{UDFS}:demean")


def test_table_function_matches_a_session(cluster: Any) -> None:
    df = frame(cluster, rows=2_000).selectExpr("id", "concat(name, ' x y') as text")
    out = quiver.spark.flat_map(df, quiver.call(f"{UDFS}:words", "text"), select=["id"])
    assert out.columns == ["id", "word", "position"]
    local = table(2_000)
    local = pa.table(
        {"id": local["id"], "text": pc.binary_join_element_wise(local["name"], " x y", "")}
    )
    with quiver.Session(workers=1) as session:
        expected = session.flat_map(local, quiver.call(f"{UDFS}:words", "text"), select=["id"])
        expected_rows = expected.read_all().to_pylist()
    key = lambda r: (r["id"], r["position"])  # noqa: E731
    assert len(expected_rows) == 3 * 2_000
    assert sorted(collected_rows(out), key=key) == sorted(expected_rows, key=key)


def collected_rows(df: Any) -> list[dict[str, Any]]:
    return [row.asDict() for row in df.collect()]
