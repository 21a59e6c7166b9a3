"""quiver on Ray, on a real two-node Ray cluster started on this machine for this module.

The cluster (a head and a second raylet, loopback only, 2 logical CPUs and a 100 MB object
store each) starts once for the module and is stopped at its end whatever happens: its
processes are found and killed by id (LocalCluster.stop). Without Ray installed
(`pip install 'quiver[ray]'`) the cluster tests skip and say so.

Checked: quiver.ray.UdfMap under Ray Data and `quiver run --ray` give what one machine gives
(row count and checksum), also for an async UDF with retries and rows that fail
(on_error="null"); a UDF error reaches the driver as quiver.UdfError naming the UDF;
a quiver worker or a Ray actor killed mid-job is run again, with no row lost or doubled.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import quiver
import quiver.ray

ROOT = Path(__file__).resolve().parents[2]
FILES = 6
ROWS_PER_FILE = 5_000
# The row whose batch kills its worker (or actor) once: in the middle of the job.
KILL_AT = FILES * ROWS_PER_FILE // 2 + 17

UDFS = f"""
import os, signal
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import quiver

HERE = os.path.dirname(os.path.abspath(__file__))


@quiver.udf(returns="string")
def shout(name: pd.Series) -> pd.Series:
    return name.str.upper() + "!"


@quiver.udf(returns="float64")
def double(value: pa.Array) -> pa.Array:
    return pc.multiply(value, 2.0)


@quiver.udf(returns="int64")
def reject(x: pa.Array) -> pa.Array:
    if pc.any(pc.equal(x, {KILL_AT})).as_py():
        raise ValueError("row {KILL_AT} is rejected")
    return x


def _once(name):
    try:
        os.close(os.open(os.path.join(HERE, name), os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False


@quiver.udf(returns="int64")
def kill_worker_once(x: pa.Array) -> pa.Array:
    if pc.any(pc.equal(x, {KILL_AT})).as_py() and _once("worker-killed"):
        os.kill(os.getpid(), signal.SIGKILL)
    return x


class Busy(Exception):
    pass


_asked = set()


@quiver.udf(
    returns="int64",
    max_concurrency=16,
    retries=quiver.Retry(max_attempts=2, initial=0.001, on=(Busy,)),
    on_error="null",
)
async def twice_when_ready(id: int) -> int:
    import asyncio

    await asyncio.sleep(0.001)
    if id % 7 == 0:
        raise LookupError(f"no answer for id {{id}}")
    if id % 3 == 0 and id not in _asked:  # busy the first time: answered on the retry
        _asked.add(id)
        raise Busy(f"busy for id {{id}}")
    return 2 * id


@quiver.udf(returns="int64")
def kill_actor_once(x: pa.Array) -> pa.Array:
    # The worker's parent is the process of the Ray actor that holds the session.
    if pc.any(pc.equal(x, {KILL_AT})).as_py() and _once("actor-killed"):
        os.kill(os.getppid(), signal.SIGKILL)
    return x
"""


def test_errors_pickle_with_their_fields() -> None:
    """Ray ships an actor's exception to the driver pickled: every field must survive."""
    errors = [
        quiver.UdfError(
            "UDF 'f' raised",
            {
                "kind": "user_error",
                "udf_name": "f",
                "error_class": "ValueError",
                "traceback": "Traceback ...",
                "worker": "worker 1 (pid 7)",
                "worker_pid": 7,
            },
        ),
        quiver.WorkerError("no such function", {"kind": "worker_error", "udf_name": "g"}),
        quiver.WorkerCrashed(
            "killed", {"kind": "worker_lost", "retryable": True, "signal": 9, "log_tail": "x"}
        ),
        quiver.UdfTimeout("slow", {"kind": "timeout", "retryable": True}),
        quiver.ProtocolError("bad frame", {"kind": "protocol_violation"}),
        quiver.InvalidInput("no column 'c'"),
        quiver.SessionClosed("closed"),
    ]
    for error in errors:
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error)
        assert str(back) == str(error)
        assert back.__dict__ == error.__dict__
    crashed = pickle.loads(pickle.dumps(errors[2]))
    assert (crashed.signal, crashed.retryable, crashed.log_tail) == (9, True, "x")


def test_cli_refuses_what_ray_runs_do_not_support(tmp_path: Path) -> None:
    binary = _binary()
    data = tmp_path / "in.parquet"
    pq.write_table(pa.table({"x": [1]}), data)
    (tmp_path / "u.py").write_text("import quiver\n")
    done = subprocess.run(
        [
            str(binary),
            "run",
            str(data),
            "--udf",
            "y=u.py:f(x)",
            "-o",
            str(tmp_path / "out"),
            "--ray",
            "auto",
            "--runtime",
            "cc=/bin/true",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "--runtime cannot be used with --ray" in done.stderr


# --- the cluster ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'quiver[ray]'")
    import ray

    from quiver.ray.local_cluster import LocalCluster

    local = LocalCluster(nodes=2, cpus_per_node=2, object_store_bytes=100 * 1024 * 1024)
    try:
        local.start()
        ray.init(address=local.address, logging_level="ERROR", log_to_driver=False)
        yield local
    finally:
        ray.shutdown()
        local.stop()
        assert local.pids() == []


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FILES Parquet files of ROWS_PER_FILE rows each, and the UDF file, in one folder."""
    root = tmp_path_factory.mktemp("ray")
    (root / "in").mkdir()
    for i in range(FILES):
        ids = pa.array(range(i * ROWS_PER_FILE, (i + 1) * ROWS_PER_FILE), pa.int64())
        pq.write_table(
            pa.table(
                {
                    "id": ids,
                    "name": pc.binary_join_element_wise("n", pc.cast(ids, pa.string()), ""),
                    "value": pc.divide(pc.cast(ids, pa.float64()), 4.0),
                }
            ),
            root / "in" / f"part-{i}.parquet",
            row_group_size=1000,
        )
    (root / "udfs.py").write_text(textwrap.dedent(UDFS))
    return root


def _udf(root: Path, name: str, *args: object) -> quiver.UdfCall:
    return quiver.call(f"{root}/udfs.py:{name}", *args)


def _fingerprint(table: pa.Table) -> tuple[int, int, list[str]]:
    """Row count, a checksum of every value, and the columns: what must match exactly."""
    rows = table.sort_by("id")
    digest = 0
    for column in rows.column_names:
        hashed = pc.cast(rows[column], pa.string()) if column != "id" else rows[column]
        digest ^= hash(tuple(hashed.to_pylist()))
    assert pc.count_distinct(rows["id"]).as_py() == rows.num_rows, "a row came twice"
    return rows.num_rows, digest, rows.column_names


def _single_machine(root: Path, calls: list[quiver.UdfCall]) -> pa.Table:
    tables = [pq.read_table(p) for p in sorted((root / "in").iterdir())]
    with quiver.Session(workers=1) as session:
        return session.map(pa.concat_tables(tables), udfs=calls).read_all()


def _ray_data(root: Path, calls: list[quiver.UdfCall], **kwargs: object) -> pa.Table:
    import ray

    ds = ray.data.read_parquet(str(root / "in"), override_num_blocks=FILES).map_batches(
        quiver.ray.UdfMap,
        fn_constructor_kwargs={"udfs": calls, "workers": 1, **kwargs},
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=1,
    )
    return pa.concat_tables(ray.get(ds.to_arrow_refs()))


def test_udf_map_gives_what_one_machine_gives_even_when_a_worker_dies(
    cluster: object, dataset: Path
) -> None:
    """One job over both nodes; one quiver worker is killed mid-job and its batch run again."""
    (dataset / "worker-killed").unlink(missing_ok=True)
    calls = [_udf(dataset, "shout", "name"), _udf(dataset, "double", "value")]
    result = _ray_data(dataset, [*calls, _udf(dataset, "kill_worker_once", "id")])
    assert (dataset / "worker-killed").exists(), "no worker was killed: the test tests nothing"
    assert result["kill_worker_once"].equals(result["id"])
    assert _fingerprint(result.drop_columns(["kill_worker_once"])) == _fingerprint(
        _single_machine(dataset, calls)
    )


def test_async_udf_with_retries_and_failing_rows(cluster: object, dataset: Path) -> None:
    calls = [_udf(dataset, "twice_when_ready", "id")]
    out = _ray_data(dataset, calls).sort_by("id")
    assert _fingerprint(out) == _fingerprint(_single_machine(dataset, calls))
    ids = out["id"].to_pylist()
    assert ids == list(range(FILES * ROWS_PER_FILE))
    expected = [None if i % 7 == 0 else 2 * i for i in ids]  # ids % 3: answered on a retry
    assert out["twice_when_ready"].to_pylist() == expected
    errors = out["twice_when_ready__error"].to_pylist()
    assert errors == [f"LookupError: no answer for id {i}" if i % 7 == 0 else None for i in ids]


def test_udf_error_reaches_the_driver_as_udf_error(cluster: object, dataset: Path) -> None:
    import ray

    context = ray.data.DataContext.get_current()
    context.raise_original_map_exception = True  # else Ray Data wraps it, losing the class
    try:
        with pytest.raises(quiver.UdfError) as caught:
            _ray_data(dataset, [_udf(dataset, "reject", "id")])
    finally:
        context.raise_original_map_exception = False
    assert caught.value.udf_name == "reject"
    assert caught.value.error_class == "ValueError"
    assert f"row {KILL_AT} is rejected" in caught.value.traceback


@pytest.mark.skipif(
    os.environ.get("QUIVER_RAY_SLOW") != "1",
    reason="an actor restart takes ~40 s on 2 cores: set QUIVER_RAY_SLOW=1 to run it "
    "(a killed quiver worker is tested in every run)",
)
def test_actor_killed_mid_job_is_run_again(cluster: object, dataset: Path) -> None:
    """Ray Data restarts an actor killed mid-job and runs its batch again."""
    (dataset / "actor-killed").unlink(missing_ok=True)
    calls = [_udf(dataset, "kill_actor_once", "id")]
    result = _ray_data(dataset, calls)
    assert (dataset / "actor-killed").exists(), "no actor was killed: the test tests nothing"
    assert result.num_rows == FILES * ROWS_PER_FILE
    assert pc.count_distinct(result["id"]).as_py() == FILES * ROWS_PER_FILE
    assert result["kill_actor_once"].equals(result["id"])


# --- quiver run --ray -----------------------------------------------------------------


def _binary() -> Path:
    binary = Path(
        os.environ.get("QUIVER_BINARY", ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver")
    )
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.skip(f"no quiver binary at {binary}: build it with `ninja -C build quiver`")
    return binary


def _quiver(cwd: Path, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_binary()), "run", *map(str, args)],
        cwd=cwd,
        env=dict(os.environ, QUIVER_PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_cli_on_ray_writes_what_local_runs_write_even_when_a_worker_dies(
    cluster: object, dataset: Path, tmp_path: Path
) -> None:
    """One output file per input, each equal to a local run's; one quiver worker is killed
    mid-job, and its file is written again from its start."""
    marker = dataset / "worker-killed"
    marker.unlink(missing_ok=True)
    udfs = ["--udf", "loud=udfs.py:shout(name)", "--udf", "twice=udfs.py:double(value)"]
    out = tmp_path / "out"
    done = _quiver(
        dataset,
        "in",
        *udfs,
        "--udf",
        "k=udfs.py:kill_worker_once(id)",
        "-o",
        out,
        "--ray",
        cluster.address,  # type: ignore[attr-defined]
    )
    assert done.returncode == 0, done.stderr
    assert marker.exists(), "no worker was killed: the test tests nothing"
    assert "on 2 nodes" in done.stderr and "1 run again after a worker died" in done.stderr
    # The file's progress line says why it was run again.
    assert "run again after attempt 1:" in done.stderr and "SIGKILL" in done.stderr, done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"part-{i}.parquet" for i in range(FILES)]
    for name in names:
        local = tmp_path / f"local-{name}"
        single = _quiver(dataset, f"in/{name}", *udfs, "-o", local, "-q")
        assert single.returncode == 0, single.stderr
        result = pq.read_table(out / name)
        assert result["k"].equals(result["id"])
        assert _fingerprint(result.drop_columns(["k"])) == _fingerprint(pq.read_table(local))
    assert [p.name for p in tmp_path.iterdir() if "quiver-tmp" in p.name] == []


def test_cli_on_ray_fails_whole_on_a_udf_error(
    cluster: object, dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = _quiver(
        dataset,
        f"{dataset}/in/*.parquet",
        "--udf",
        "r=udfs.py:reject(id)",
        "-o",
        out,
        "--ray",
        cluster.address,  # type: ignore[attr-defined]
    )
    assert done.returncode == 1, done.stderr
    # The UDF is named by its result column; the traceback names the function.
    assert "UDFs 'r'" in done.stderr and f"row {KILL_AT} is rejected" in done.stderr
    assert list(tmp_path.iterdir()) == [], "a failed job left output behind"
