"""quiver on a two-node local Ray cluster vs `quiver run` on one machine vs Ray Data alone.

    .venv/bin/python bench/ray_bench.py --scale 0.1 --runs 3

The seed's identity-20m-100 scenario (a pandas identity over 100-character strings) at
`--scale`, split into 8 Parquet files. Four ways, each writing Parquet, timed end to end
(median of `--runs` after one warm-up):

- local:    `quiver run` over the unsplit file on this machine (--workers 2);
- ray-cli:  `quiver run DIR --ray ADDR`: one output file per input, on actors of both nodes;
- udfmap:   Ray Data read_parquet -> map_batches(quiver.ray.UdfMap) -> write_parquet;
- raydata:  the same Ray Data pipeline with the same pandas UDF body in map_batches, no quiver.

Also the per-fragment overhead of `quiver run --ray`: the time of a job over 8 files of 100
rows, divided by 8. The two nodes share this machine's cores (4 logical CPUs each), so the
figures show overheads, not scaling. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from quiver_bench.dataset import ensure_dataset  # noqa: E402
from quiver_bench.scenarios import SCENARIOS, pick  # noqa: E402

FILES = 8


def median_seconds(run: Callable[[], None], runs: int) -> tuple[float, list[float]]:
    run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def split(source: Path, directory: Path, files: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    table = pq.read_table(source)
    step = -(-table.num_rows // files)
    for i in range(files):
        pq.write_table(table.slice(i * step, step), directory / f"part-{i}.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--object-store-mb", type=int, default=1024)
    options = parser.parse_args()

    import ray

    import quiver
    import quiver.ray
    from quiver.ray.local_cluster import LocalCluster

    scenario = pick(SCENARIOS, "identity-20m-100", "scenario")[0]
    seed = ensure_dataset(ROOT / "bench" / "data", scenario, options.scale)
    rows = pq.ParquetFile(seed).metadata.num_rows
    work = Path(tempfile.mkdtemp(prefix="qrb", dir="/tmp"))
    split(seed, work / "in", FILES)
    tiny = work / "tiny"
    tiny.mkdir()
    for i in range(FILES):
        pq.write_table(
            pq.read_table(work / "in" / "part-0.parquet").slice(0, 100), tiny / f"part-{i}.parquet"
        )
    binary = ROOT / "build" / "cpp" / "quiver" / "cli" / "quiver"
    udf = f"identity={ROOT}/bench/udfs.py:identity(data)"
    environment = dict(os.environ, QUIVER_PYTHON=sys.executable)
    sys.path.insert(0, str(ROOT / "bench"))
    import cloudpickle

    import udfs  # bench/udfs.py: the body every peer runs

    cloudpickle.register_pickle_by_value(udfs)  # the actors need not import it

    def quiver_run(*args: object) -> None:
        subprocess.run([str(binary), "run", *map(str, args), "-q"], check=True, env=environment)

    def fresh(path: Path) -> Path:
        shutil.rmtree(path, ignore_errors=True)
        return path

    cluster = LocalCluster(
        # Ray Data holds CPUs back for its read and write operators: advertise enough
        # logical CPUs that 4 map actors can start (the machine's 2 cores are shared).
        nodes=2,
        cpus_per_node=4,
        object_store_bytes=options.object_store_mb * 1024 * 1024,
    )
    results: dict[str, float] = {}
    try:
        cluster.start()
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False

        def local() -> None:
            quiver_run(seed, "--udf", udf, "--workers", 2, "-o", fresh(work / "local.parquet"))

        def ray_cli() -> None:
            quiver_run(
                work / "in", "--udf", udf, "-o", fresh(work / "ray-cli"), "--ray", cluster.address
            )

        def ray_cli_tiny() -> None:
            quiver_run(tiny, "--udf", udf, "-o", fresh(work / "tiny-out"), "--ray", cluster.address)

        def pipeline(fn: object, **kwargs: object) -> None:
            ray.data.read_parquet(str(work / "in"), override_num_blocks=FILES).map_batches(
                fn, compute=ray.data.ActorPoolStrategy(size=4), num_cpus=1, **kwargs
            ).write_parquet(str(fresh(work / "ray-data")))

        def udf_map() -> None:
            call = quiver.call(f"{ROOT}/bench/udfs.py:identity", "data")
            pipeline(
                quiver.ray.UdfMap, fn_constructor_kwargs={"udfs": [call]}, batch_format="pyarrow"
            )

        class PandasIdentity:  # a callable class, so Ray Data runs it on actors like UdfMap
            def __call__(self, batch):  # type: ignore[no-untyped-def]
                batch["identity"] = udfs.identity(batch["data"])
                return batch

        def ray_data() -> None:
            pipeline(PandasIdentity, batch_format="pandas")

        for name, run in [
            ("local", local),
            ("ray-cli", ray_cli),
            ("udfmap", udf_map),
            ("raydata", ray_data),
            ("ray-cli-8-tiny-files", ray_cli_tiny),
        ]:
            results[name], times = median_seconds(run, options.runs)
            print(
                f"bench: {name}: {results[name]:.2f} s  runs {[round(t, 2) for t in times]}",
                flush=True,
            )
    finally:
        ray.shutdown()
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)

    base = results["local"]
    print(
        f"\nidentity-20m-100 at scale {options.scale:g}: {rows:,} rows in {FILES} files; "
        f"median of {options.runs} runs\n"
    )
    print("| way | seconds | rows/s | vs local quiver run |")
    print("| --- | ---: | ---: | ---: |")
    for name in ("local", "ray-cli", "udfmap", "raydata"):
        print(
            f"| {name} | {results[name]:.2f} | {rows / results[name]:,.0f} | "
            f"{results[name] / base:.2f}x |"
        )
    print(
        f"\nper-fragment overhead of quiver run --ray (8 files of 100 rows): "
        f"{results['ray-cli-8-tiny-files'] / FILES:.2f} s per file "
        f"({results['ray-cli-8-tiny-files']:.2f} s per job)"
    )


if __name__ == "__main__":
    main()
