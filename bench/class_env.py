"""What class UDFs and per-UDF environments cost and save (figures for docs/benchmarks.md).

    .venv/bin/python bench/class_env.py [--repeats 3]

Measures, in one run, median of ``--repeats``:

- building an environment cold (a local wheel, no network), and finding it built;
- what `quiver run` pays to learn the UDFs' environments (`python -m quiver.envs resolve`)
  when they are built, against starting the interpreter alone;
- a class UDF whose setup takes 50 ms over 40 batches in a quiver.Session (one worker): set up
  once per worker, against the same work as a function that sets up per batch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python" / "tests"))

from wheelhouse import apply, make_wheel, offline_environment  # noqa: E402


def median_seconds(action, repeats: int) -> float:
    """Median wall time of ``action()`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_environments(base: Path, repeats: int) -> None:
    from quiver import envs

    wheels = base / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "quiverdemo", "1.0")
    apply(offline_environment(wheels, base / "unused"))
    roots = iter(range(1000))

    def cold() -> None:
        envs.ensure_env(["quiverdemo==1.0"], quiet=True, root=base / f"cold{next(roots)}")

    cold_s = median_seconds(cold, repeats)
    warm_root = base / "warm"
    envs.ensure_env(["quiverdemo==1.0"], quiet=True, root=warm_root)
    warm_s = median_seconds(
        lambda: envs.ensure_env(["quiverdemo==1.0"], quiet=True, root=warm_root), repeats * 10
    )
    udf = base / "u.py"
    udf.write_text(
        "import quiver\n@quiver.udf(returns='int64', requirements=['quiverdemo==1.0'])\n"
        "def f(x): return x\n"
    )
    env = dict(os.environ, QUIVER_ENV_DIR=str(warm_root))
    resolve = [sys.executable, "-m", "quiver.envs", "resolve", "--quiet", f"{udf}:f"]
    resolve_s = median_seconds(lambda: subprocess.run(resolve, env=env, check=True), repeats)
    bare_s = median_seconds(lambda: subprocess.run([sys.executable, "-c", "pass"]), repeats)
    print("environments (one local wheel, pip; median of", repeats, "runs)")
    print(f"  build cold                      {cold_s:8.2f} s")
    print(f"  find built (ensure_env)         {warm_s * 1000:8.2f} ms")
    print(f"  quiver.envs resolve, built      {resolve_s * 1000:8.0f} ms")
    print(f"  python -c pass                  {bare_s * 1000:8.0f} ms")


def bench_class_setup(base: Path, repeats: int) -> None:
    import pyarrow as pa

    import quiver

    source = base / "setup_udfs.py"
    source.write_text(
        textwrap.dedent("""\
            import time
            import pyarrow as pa
            import pyarrow.compute as pc
            import quiver

            def load_model():
                time.sleep(0.05)  # stands for loading a model
                return 2

            @quiver.udf(returns="int64")
            class Model:
                def __init__(self):
                    self.factor = load_model()

                def __call__(self, x: pa.Array) -> pa.Array:
                    return pc.multiply(x, self.factor)

            @quiver.udf(returns="int64")
            def per_batch(x: pa.Array) -> pa.Array:
                return pc.multiply(x, load_model())
            """)
    )
    table = pa.table({"x": list(range(40_000))})
    with quiver.Session(workers=1) as session:

        def run(ref: str) -> None:
            session.map(table, udfs=[quiver.call(ref, "x")], batch_rows=1000).read_all()

        run(f"{source}:Model")  # start the worker and build the instance
        class_s = median_seconds(lambda: run(f"{source}:Model"), repeats)
        function_s = median_seconds(lambda: run(f"{source}:per_batch"), repeats)
    print("a 50 ms setup, 40 batches, one warm worker (median of", repeats, "maps)")
    print(f"  class UDF (setup once per worker) {class_s * 1000:8.0f} ms")
    print(f"  function, setup per batch         {function_s * 1000:8.0f} ms")
    print(f"  ratio                             {function_s / class_s:8.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quiver-bench-") as directory:
        bench_environments(Path(directory), args.repeats)
        bench_class_setup(Path(directory), args.repeats)


if __name__ == "__main__":
    main()
