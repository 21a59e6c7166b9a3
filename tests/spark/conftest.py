"""One Spark cluster for every test of quiver.spark: ``local-cluster[2,1,1024]``.

Two executor JVMs (1 core, 1 GiB each), each with its own Python workers, started once per
test run (CI may start one Spark cluster per run) and stopped whatever happens. Every
process of the cluster's executors carries a mark in its environment; after the cluster
stops, none may be left (a quiver worker orphaned by an executor would be found here).
Each test has a time limit (a SIGALRM cancels its Spark jobs and fails it); the cluster's
start has one too. Without PySpark or Java the tests skip and say so.

The executors run quiver from the self-contained wheel (scripts/pack_wheel.py, packed from
build/ and installed into an environment of its own), not from the editable checkout the
driver runs; QUIVER_SPARK_EDITABLE=1 runs them from the checkout instead (quicker to iterate).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from spark_cluster import (
    MARK,
    START_SECONDS,
    TEST_SECONDS,
    alarm,
    marked_processes,
    wheel_environment,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def wheel_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path] | None:
    """The executors' Python and the wheel it has quiver from (None: the checkout)."""
    if os.environ.get("QUIVER_SPARK_EDITABLE") == "1":
        return None
    return wheel_environment(ROOT, tmp_path_factory.mktemp("wheel"))


# Module scope: the one test module gets one cluster, stopped as soon as that module is done,
# so the pytest worker that ran it goes on to other suites without three idle JVMs beside it.
@pytest.fixture(scope="module")
def spark(wheel_env: tuple[Path, Path] | None) -> Iterator[Any]:
    pytest.importorskip("pyspark", reason="quiver.spark's tests need PySpark (quiver[spark])")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("quiver.spark's tests need a Java runtime for Spark")
    from pyspark.sql import SparkSession

    token = uuid.uuid4().hex
    names = ("SPARK_LOCAL_IP", "PYSPARK_PYTHON")
    saved_environment = {name: os.environ.get(name) for name in names}
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # executors bind loopback, not the host's address
    # Executors run the wheel's environment (otherwise they would lack pyarrow and quiver).
    os.environ["PYSPARK_PYTHON"] = str(wheel_env[0]) if wheel_env else sys.executable
    session = None
    try:
        alarm(START_SECONDS, "starting local-cluster[2,1,1024]")
        session = (
            SparkSession.builder.master("local-cluster[2,1,1024]")
            .appName("quiver-spark-tests")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.task.maxFailures", "2")
            .config("spark.sql.shuffle.partitions", "4")
            .config(f"spark.executorEnv.{MARK}", token)
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        signal.alarm(0)
        yield session
    finally:
        signal.alarm(0)
        if session is not None:
            session.stop()
        for name, saved in saved_environment.items():  # later suites in this process see their own
            if saved is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = saved
        left = _wait_for_no_processes(token, seconds=20)
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if left:
            listed = [(pid, cmdline[:200]) for pid, cmdline in left]
            pytest.fail(f"processes of the Spark cluster outlived it: {listed}")


def _wait_for_no_processes(token: str, seconds: float) -> list[tuple[int, str]]:
    deadline = time.monotonic() + seconds
    left = marked_processes(token)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = marked_processes(token)
    return left


@pytest.fixture
def cluster(spark: Any) -> Iterator[Any]:
    """The session-wide cluster, with this test's time limit."""
    alarm(TEST_SECONDS, "the test")
    try:
        yield spark
    finally:
        signal.alarm(0)
        spark.sparkContext.cancelAllJobs()
