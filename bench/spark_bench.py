"""quiver.spark beside Spark's own pandas_udf, in one SparkSession, on the seed's scenarios.

For each scenario (bench/quiver_bench/scenarios.py, Parquet in, Spark's `noop` sink, every
input column kept plus the result, as bench/run.py's Spark peer runs it):

- `pandas_udf`: the pandas body of bench/udfs.py in Spark's `pandas_udf` (columnar input on);
- `quiver.spark.map`, pandas: the same body as a quiver UDF (by reference, bench/udfs.py);
- `quiver.spark.map`, C++: the C++ SDK example worker's `identity` (for concat: `identity` of
  the expression `name || data`, which the engine computes with Arrow before the call).

Then the per-partition overhead: one 1-row partition collected, with `pandas_udf`, with
quiver.spark warm (its sessions already started) and cold (a session configuration not used
before: the driver's check and the executor each start a quiver worker).

    .venv/bin/python bench/spark_bench.py [--scale 0.25] [--runs 3] [--master local[2]]

Prints Markdown (medians of `--runs` after one warm-up, the cases of a scenario taking turns;
ratios within this run) and the peak memory of each case alone in a SparkSession of its own;
writes it with the raw times under bench/results/spark/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import pyarrow.compute as pc  # noqa: E402

import quiver  # noqa: E402
import quiver.spark  # noqa: E402
from quiver_bench.dataset import ensure_dataset  # noqa: E402
from quiver_bench.scenarios import SCENARIOS  # noqa: E402

CPP = ROOT / "build" / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker"
UDFS = ROOT / "bench" / "udfs.py"
DEFAULT_SCENARIOS = "concat-2m-200,identity-1m-1000,identity-2m-200"
CASES = ("pandas_udf", "quiver.spark.map, pandas", "quiver.spark.map, C++")


def interleaved(cases: dict[str, Callable[[], Any]], runs: int) -> dict[str, list[float]]:
    """Wall times of ``runs`` calls of each case after one warm-up call each, the cases taking
    turns so that a change in the machine's load weighs on all of them alike."""
    for run in cases.values():
        run()
    times: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(runs):
        for case, run in cases.items():
            start = time.perf_counter()
            run()
            times[case].append(time.perf_counter() - start)
    return times


def scenario_cases(spark: Any, scenario: Any, file: Path) -> dict[str, Callable[[], None]]:
    """The three ways to run ``scenario`` over ``file``, each a write to the noop sink."""
    from pyspark.sql.functions import pandas_udf

    import udfs

    body = getattr(udfs, scenario.udf).func
    frame = spark.read.parquet(str(file))

    def spark_pandas_udf() -> None:
        udf = pandas_udf(body, "string")
        out = frame.select("*", udf(*scenario.arguments).alias("result"))
        out.write.format("noop").mode("overwrite").save()

    def quiver_pandas() -> None:
        call = quiver.call(f"{UDFS}:{scenario.udf}", *scenario.arguments, name="result")
        out = quiver.spark.map(frame, udfs=[call])
        out.write.format("noop").mode("overwrite").save()

    def quiver_cpp() -> None:
        if scenario.udf == "concat":
            argument: Any = pc.binary_join_element_wise(*map(pc.field, scenario.arguments), "")
        else:
            argument = scenario.arguments[0]
        call = quiver.spark.runtime_call("cc", "identity", argument, name="result")
        out = quiver.spark.map(frame, udfs=[call], runtimes={"cc": str(CPP)})
        out.write.format("noop").mode("overwrite").save()

    return dict(zip(CASES, (spark_pandas_udf, quiver_pandas, quiver_cpp), strict=True))


def overhead_cases(spark: Any) -> dict[str, Callable[[], None]]:
    """One 1-row partition, collected: pandas_udf, quiver.spark warm, quiver.spark cold."""
    from pyspark.sql.functions import pandas_udf

    import udfs

    one = spark.range(0, 1, numPartitions=1).selectExpr("cast(id as string) as data")
    fresh = iter(range(1, 1_000_000))

    def spark_pandas_udf() -> None:
        one.select(pandas_udf(udfs.identity.func, "string")("data")).collect()

    def quiver_warm() -> None:
        quiver.spark.map(one, udfs=[quiver.call(f"{UDFS}:identity", "data")]).collect()

    def quiver_cold() -> None:
        # A batch_timeout never used before: a new session on the driver and the executor.
        timeout = 600 + next(fresh) / 1000
        call = quiver.call(f"{UDFS}:identity", "data")
        quiver.spark.map(one, udfs=[call], batch_timeout=timeout).collect()

    return {
        "pandas_udf": spark_pandas_udf,
        "quiver.spark.map, warm": quiver_warm,
        "quiver.spark.map, cold": quiver_cold,
    }


def start_spark(master: str) -> Any:
    """A SparkSession as bench/run.py's Spark peer has it, with bench/udfs.py on executors."""
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(master)
        .appName("quiver-spark-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pythonUDF.columnarInput.enabled", "true")
        .config("spark.executorEnv.PYTHONPATH", str(ROOT / "bench"))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.addPyFile(str(UDFS))
    return spark


def memory_peaks(master: str, scenario: Any, file: Path) -> dict[str, dict[str, int]]:
    """Peak RSS per case, each in a SparkSession of its own (two runs): the JVM's, and the
    executor side's (Spark's Python workers and the quiver workers they started)."""
    from quiver_bench.rss import ProcessTreeSampler

    peaks = {}
    for case in CASES:
        spark = start_spark(master)
        try:
            sampler = ProcessTreeSampler(os.getpid(), "driver").start()
            run = scenario_cases(spark, scenario, file)[case]
            run()
            run()
            result = sampler.stop().peaks
        finally:
            spark.stop()
        peaks[case] = {"jvm": result["engine"], "executor_python": result["workers"]}
    return peaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--scenarios", default=DEFAULT_SCENARIOS)
    parser.add_argument("--memory-scenario", default="identity-1m-1000")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "spark"))
    args = parser.parse_args()
    if not CPP.is_file():
        parser.error(f"the C++ example worker is not built: {CPP}")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = start_spark(args.master)
    lines = [
        f"# quiver.spark beside pandas_udf ({args.master}, scale {args.scale})",
        "",
        f"{platform.node()}, {os.cpu_count()} cores; pyspark {spark.version}; median of "
        f"{args.runs} after 1 warm-up, the cases taking turns; ratios are pandas_udf's time "
        "over the case's.",
        "",
        "| scenario | rows | case | median (s) | rows/s | vs pandas_udf |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    raw: dict[str, Any] = {"master": args.master, "scale": args.scale, "runs": args.runs}
    try:
        wanted = [s.strip() for s in args.scenarios.split(",")]
        for scenario in [s for s in SCENARIOS if s.key in wanted]:
            file = ensure_dataset(ROOT / "bench" / "data", scenario, args.scale)
            rows = scenario.scaled_rows(args.scale)
            cases = scenario_cases(spark, scenario, file)
            times = interleaved(cases, args.runs)
            baseline = statistics.median(times[CASES[0]])
            for case in CASES:
                median = statistics.median(times[case])
                raw[f"{scenario.key}/{case}"] = times[case]
                lines.append(
                    f"| {scenario.key} | {rows:,} | {case} | {median:.2f} | {rows / median:,.0f} "
                    f"| {baseline / median:.2f}x |"
                )
                print(lines[-1], flush=True)
        lines += ["", "| one 1-row partition | median (ms) |", "| --- | --- |"]
        for case, times in interleaved(overhead_cases(spark), max(args.runs, 5)).items():
            raw[f"1-row/{case}"] = times
            lines.append(f"| {case} | {statistics.median(times) * 1000:.0f} |")
            print(lines[-1], flush=True)
    finally:
        spark.stop()
    scenario = next(s for s in SCENARIOS if s.key == args.memory_scenario)
    file = ensure_dataset(ROOT / "bench" / "data", scenario, args.scale)
    peaks = memory_peaks(args.master, scenario, file)
    raw["memory"] = peaks
    lines += [
        "",
        f"Peak resident memory, {scenario.key} ({scenario.scaled_rows(args.scale):,} rows), "
        "each case alone in a new SparkSession (two runs):",
        "",
        "| case | executor side: Spark's Python workers + quiver workers (MiB) | JVM (MiB) |",
        "| --- | --- | --- |",
    ]
    for case, peak in peaks.items():
        lines.append(
            f"| {case} | {peak['executor_python'] / 2**20:.0f} | {peak['jvm'] / 2**20:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    name = f"{args.master.replace('[', '-').replace(']', '').replace(',', '-')}-scale{args.scale:g}"
    (output / f"{name}.md").write_text(text)
    (output / f"{name}.json").write_text(json.dumps(raw, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
