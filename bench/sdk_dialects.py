"""The compiled SDKs' example workers in Spark's dialect beside the same worker in quiver.v1.

    .venv/bin/python bench/sdk_dialects.py [--worker cpp|rust] [--runs 5]

What bench/spark_dialect.py measures for the Python worker, for the C++ SDK's example worker
(build/cpp/examples/udf_worker/quiver_example_udf_worker) and the Rust SDK's
(rust/target/release/examples/udfs): both dialects over a Unix socket, the `identity` symbol,
1-row round trips one at a time (median microseconds) and 1 MiB / 16 MiB string batches with 4 in
flight (MiB/s of batch bytes one way). Runs alternate between the dialects; each figure is the
median of ``--runs`` runs, the ratio the median of the run-by-run ratios (spark / quiver.v1).
The grpcio client in this process is in every figure, the same for both dialects.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spark_dialect import Dialect, Quiver, Spark, compare  # noqa: E402  (bench/ is not a package)

ROOT = Path(__file__).resolve().parents[1]
WORKERS = {
    "cpp": ROOT / "build" / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker",
    "rust": ROOT / "rust" / "target" / "release" / "examples" / "udfs",
}


class CompiledWorker(Dialect):
    """What a compiled example worker changes in bench/spark_dialect.py's dialects: its binary,
    the registered `identity` symbol, and the channel's :authority."""

    payload_format = "symbol"
    payload = b"identity"
    cwd = None
    # grpc-core's default :authority for a unix: target is the socket path, which the Rust
    # worker's HTTP/2 server refuses; quiver's engine sends localhost too.
    channel_options = [*Dialect.channel_options, ("grpc.default_authority", "localhost")]


class CompiledSpark(CompiledWorker, Spark):
    pass


class CompiledQuiver(CompiledWorker, Quiver):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=sorted(WORKERS), default="cpp")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median printed)")
    parser.add_argument("--round-trips", type=int, default=2000, help="1-row batches per run")
    args = parser.parse_args()
    worker = WORKERS[args.worker]
    if not worker.exists():
        raise SystemExit(f"{worker} is not built (bash scripts/setup.sh --tests)")
    CompiledWorker.worker_command = [str(worker)]
    with tempfile.TemporaryDirectory(prefix="qbench") as folder:
        dialects: list[Dialect] = [CompiledSpark(Path(folder)), CompiledQuiver(Path(folder))]
        try:
            print(f"{args.worker} worker")
            compare(dialects[0], dialects[1], args.round_trips, args.runs)
        finally:
            for dialect in dialects:
                dialect.close()


if __name__ == "__main__":
    main()
