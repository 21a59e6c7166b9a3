"""How each peer runs the scenarios, inside the peer's own process (bench/peer.py).

A peer is set up once (its start-up, timed on its own: a SparkSession, a DuckDB
connection, ...); `query(scenario, file)` then returns a callable that executes one
scenario once: read the Parquet file, call the UDF of bench/udfs.py on every batch, and
discard the result. Each system is imported inside its own peer, so a peer's process loads
only its own system.
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quiver_bench.scenarios import SCENARIOS, Peer, Scenario

BENCH_DIR = Path(__file__).resolve().parents[1]


@dataclass
class PeerOptions:
    """What bench/run.py tells a peer's process."""

    peer: Peer
    workers: int
    quiver_binary: Path
    startup_file: Path
    input_mode_flag: bool


@dataclass
class Query:
    """One scenario ready to run: `run` executes it once."""

    run: Callable[[], None]
    settings: dict[str, Any] = field(default_factory=dict)


def elapsed_ms(start: float) -> float:
    """Return the milliseconds since `start` (a time.perf_counter() value)."""
    return (time.perf_counter() - start) * 1000.0


def udf_function(scenario: Scenario) -> Callable[..., Any]:
    """Return the plain Python function of the scenario's UDF (bench/udfs.py)."""
    udfs = importlib.import_module("udfs")  # imported late: quiver's launcher needs no pandas
    return getattr(udfs, scenario.udf).func


def arrow_to_arrow(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a pandas UDF as Arrow in, Arrow out: each argument goes through pandas."""
    import pyarrow as pa

    def call(*arrays: Any) -> Any:
        result = function(*[array.to_pandas() for array in arrays])
        return pa.array(result, type=pa.string(), from_pandas=True)

    # DuckDB counts a function's parameters from its signature: give it the UDF's own.
    call.__signature__ = inspect.signature(function)
    return call


class BasePeer:
    """A peer's start-up time, settings and notes; subclasses set up in __init__."""

    def __init__(self, options: PeerOptions) -> None:
        self.options = options
        self.startup_ms = 0.0
        self.settings: dict[str, Any] = {}
        self.notes: list[str] = []

    def query(self, scenario: Scenario, file: Path) -> Query:
        """Return the callable that runs `scenario` over `file` once."""
        raise NotImplementedError

    def close(self) -> None:
        """Tear the peer down."""


class QuiverPeer(BasePeer):
    """`quiver run ... --output-format noop`: one engine process and its workers per run.

    Start-up is a run over a one-row file (process start, worker start, UDF import). The
    timed runs include it, as a user of the command pays it on every run.
    """

    def __init__(self, options: PeerOptions) -> None:
        super().__init__(options)
        identity = next(s for s in SCENARIOS if s.udf == "identity")
        start = time.perf_counter()
        run_command(self.command(identity, options.startup_file))
        self.startup_ms = elapsed_ms(start)
        self.settings = {"batch_rows": 65536, "workers": options.workers}
        if not options.input_mode_flag:
            self.notes.append("quiver run has no --input-mode here: ran its default path")

    def command(self, scenario: Scenario, file: Path) -> list[str]:
        """Return the `quiver run` command line of `scenario` over `file`."""
        options = self.options
        arguments = ", ".join(scenario.arguments)
        spec = f"result={BENCH_DIR / 'udfs.py'}:{scenario.udf}({arguments})"
        command = [str(options.quiver_binary), "run", str(file), "--udf", spec]
        command += ["--output-format", "noop", "--workers", str(options.workers), "--quiet"]
        input_mode, _, variant = options.peer.mode.partition("-")
        if options.input_mode_flag:
            command += ["--input-mode", input_mode]
        if variant == "cold":
            command.append("--no-daemon")
        # Named, not left to the default (auto: shm with the Python worker): the peers compare
        # the two transports, and the cold start was measured over uds.
        command += ["--transport", "shm" if variant == "shm" else "uds"]
        return command

    def query(self, scenario: Scenario, file: Path) -> Query:
        command = self.command(scenario, file)
        return Query(lambda: run_command(command), {"command": " ".join(command)})


class QuiverSessionPeer(BasePeer):
    """`quiver.Session.map` in process: one Session (its workers warm) throughout, as Spark
    keeps its SparkSession; a run maps the Parquet file's path, which the engine reads with the
    `quiver run` readers (batches of about 4 MiB, no GIL), and discards the result batches.
    A pyarrow dataset scanner of the same file, which the peer used before, took 1.1-1.8x as
    long at 20M rows (bench/session_reader.py).

    Start-up is the Session and a map over a one-row file (worker start, UDF import).
    """

    def __init__(self, options: PeerOptions) -> None:
        super().__init__(options)
        start = time.perf_counter()
        import quiver

        self.session = quiver.Session(workers=options.workers)
        identity = next(s for s in SCENARIOS if s.udf == "identity")
        self.query(identity, options.startup_file).run()
        self.startup_ms = elapsed_ms(start)
        self.settings = {"batch_bytes": 4 << 20, "workers": options.workers}

    def query(self, scenario: Scenario, file: Path) -> Query:
        import quiver

        udfs = importlib.import_module("udfs")
        call = quiver.call(getattr(udfs, scenario.udf), *scenario.arguments, name="result")

        def run() -> None:
            for _batch in self.session.map(file, udfs=[call]):
                pass

        settings = {"udf": call.payload.decode(), "input": "the path (the engine's readers)"}
        return Query(run, settings)

    def close(self) -> None:
        self.session.close()


def run_command(command: list[str]) -> None:
    """Run a command to its end; raise with its stderr when it fails."""
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"exit status {done.returncode}: {done.stderr.strip()[-2000:]}")


class SparkPeer(BasePeer):
    """PySpark `pandas_udf` in local[N], Parquet in, `noop` sink; one SparkSession throughout.

    `peer.mode` sets spark.sql.execution.arrow.pythonUDF.columnarInput.enabled.
    """

    def __init__(self, options: PeerOptions) -> None:
        super().__init__(options)
        start = time.perf_counter()
        from pyspark.sql import SparkSession

        self.spark = (
            SparkSession.builder.master(f"local[{options.workers}]")
            .appName("quiver-bench")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.execution.arrow.pythonUDF.columnarInput.enabled", options.peer.mode)
            .getOrCreate()
        )
        self.spark.sparkContext.setLogLevel("ERROR")
        self.startup_ms = elapsed_ms(start)
        batch = self.spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
        self.settings = {
            "master": f"local[{options.workers}]",
            "columnarInput.enabled": options.peer.mode,
            "arrow.maxRecordsPerBatch": batch,
        }

    def query(self, scenario: Scenario, file: Path) -> Query:
        from pyspark.sql.functions import pandas_udf

        function = pandas_udf(udf_function(scenario), "string")
        frame = self.spark.read.parquet(str(file))
        # All columns plus the result, as the seed does: no Project between scan and UDF.
        selected = frame.select("*", function(*scenario.arguments).alias("result"))

        def run() -> None:
            selected.write.format("noop").mode("overwrite").save()

        plan = selected._jdf.queryExecution().executedPlan().toString()
        return Query(run, {"plan": plan})

    def close(self) -> None:
        self.spark.stop()


class DuckDBPeer(BasePeer):
    """DuckDB `create_function(..., type='arrow')`, in process; result batches discarded."""

    def __init__(self, options: PeerOptions) -> None:
        super().__init__(options)
        start = time.perf_counter()
        import duckdb

        self.connection = duckdb.connect(config={"threads": options.workers})
        self.functions: set[str] = set()
        self.startup_ms = elapsed_ms(start)
        self.settings = {"threads": options.workers}

    def query(self, scenario: Scenario, file: Path) -> Query:
        from duckdb import sqltypes

        name = f"bench_{scenario.udf}"
        parameters = [sqltypes.VARCHAR] * len(scenario.arguments)
        if name not in self.functions:
            udf = arrow_to_arrow(udf_function(scenario))
            self.connection.create_function(name, udf, parameters, sqltypes.VARCHAR, type="arrow")
            self.functions.add(name)
        path = str(file).replace("'", "''")
        arguments = ", ".join(scenario.arguments)
        sql = f"SELECT *, {name}({arguments}) AS result FROM read_parquet('{path}')"

        def run() -> None:
            for _batch in self.connection.sql(sql).to_arrow_reader():
                pass

        return Query(run, {"sql": sql})

    def close(self) -> None:
        self.connection.close()


class PolarsPeer(BasePeer):
    """Polars `map_batches` over `scan_parquet`, streamed into a sink that drops each batch."""

    def __init__(self, options: PeerOptions) -> None:
        super().__init__(options)
        start = time.perf_counter()
        import polars as pl

        self.startup_ms = elapsed_ms(start)
        self.settings = {"threads": pl.thread_pool_size()}

    def query(self, scenario: Scenario, file: Path) -> Query:
        import polars as pl

        call = arrow_to_arrow(udf_function(scenario))

        def batch(series: list[Any]) -> Any:
            return pl.from_arrow(call(*[column.to_arrow() for column in series]))

        udf = pl.map_batches(list(scenario.arguments), batch, pl.String, is_elementwise=True)
        lazy = pl.scan_parquet(file).with_columns(udf.alias("result"))

        def run() -> None:
            lazy.sink_batches(lambda _frame: None)

        return Query(run, {"sink": "sink_batches, each batch dropped"})


class DaftPeer(BasePeer):
    """Daft `@daft.func.batch` over `read_parquet`, result batches streamed and dropped.

    `peer.mode` "process" runs the UDF in Daft's own worker processes (`use_process=True`,
    its out-of-process mode), "threads" on threads of the peer's process; either way on Daft's
    native runner with as many threads as workers (a synchronous `@daft.func` takes no
    `max_concurrency`: Daft sizes its UDF pool from the runner).
    """

    def __init__(self, options: PeerOptions) -> None:
        super().__init__(options)
        start = time.perf_counter()
        import daft

        daft.set_runner_native(num_threads=options.workers)
        self.startup_ms = elapsed_ms(start)
        self.settings = {
            "use_process": options.peer.mode == "process",
            "runner": f"native, {options.workers} threads",
            "daft": daft.__version__,
        }

    def query(self, scenario: Scenario, file: Path) -> Query:
        import daft

        call = arrow_to_arrow(udf_function(scenario))

        def batch(*series: Any) -> Any:
            return daft.Series.from_arrow(call(*[column.to_arrow() for column in series]))

        udf = daft.func.batch(
            return_dtype=daft.DataType.string(),
            use_process=self.options.peer.mode == "process",
        )(batch)
        frame = daft.read_parquet(str(file))
        selected = frame.with_column("result", udf(*[frame[name] for name in scenario.arguments]))

        def run() -> None:
            for _batch in selected.to_arrow_iter():
                pass

        return Query(run, self.settings | {"sink": "to_arrow_iter, each batch dropped"})


PEER_CLASSES: dict[str, type[BasePeer]] = {
    "quiver": QuiverPeer,
    "quiver-session": QuiverSessionPeer,
    "spark": SparkPeer,
    "duckdb": DuckDBPeer,
    "polars": PolarsPeer,
    "daft": DaftPeer,
}


def environment_for(peer: Peer, workers: int) -> dict[str, str]:
    """Return the environment variables a peer's process needs set before it starts."""
    paths = [str(BENCH_DIR)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    env = {"PYTHONPATH": os.pathsep.join(paths), "QUIVER_PYTHON": sys.executable}
    if peer.kind == "spark":
        env["PYSPARK_PYTHON"] = sys.executable
        env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    if peer.kind == "polars":
        env["POLARS_MAX_THREADS"] = str(workers)
    return env
