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
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spark_dialect import (  # noqa: E402  (bench/ is not a package)
    SCHEMA,
    Dialect,
    Stream,
    round_trip_us,
    throughput_mib_s,
)

ROOT = Path(__file__).resolve().parents[1]
WORKERS = {
    "cpp": ROOT / "build" / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker",
    "rust": ROOT / "rust" / "target" / "release" / "examples" / "udfs",
}
# grpc-core's default :authority for a unix: target is the socket path, which the Rust worker's
# HTTP/2 server refuses; quiver's engine sends localhost too.
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.default_authority", "localhost"),
]


class CompiledWorker(Dialect):
    """A compiled example worker, started by this process, and a channel to it."""

    worker = Path()

    def __init__(self, folder: Path) -> None:  # noqa: D107 - as Dialect, without python/ cwd
        self.socket = folder / f"{self.name}.sock"
        self.process = subprocess.Popen(self.command(), env=self.env())
        self.channel = grpc.insecure_channel(f"unix:{self.socket}", options=CHANNEL_OPTIONS)
        self.wait_ready()


class Spark(CompiledWorker):
    name = "spark"

    def command(self) -> list[str]:
        return [str(self.worker), "--dialect", "spark", "--id", "bench"] + [
            "--connection",
            str(self.socket),
        ]

    def heartbeat(self) -> None:
        from quiver.spark_dialect.proto import udf_message_pb2 as spb
        from quiver.spark_dialect.proto import udf_service_pb2_grpc

        stub = udf_service_pb2_grpc.UdfWorkerStub(self.channel)
        stub.Manage(spb.WorkerRequest(heartbeat=spb.Heartbeat()), timeout=1)

    def open(self) -> Stream:
        from quiver.spark_dialect.proto import common_pb2, udf_service_pb2_grpc
        from quiver.spark_dialect.proto import udf_message_pb2 as spb

        stub = udf_service_pb2_grpc.UdfWorkerStub(self.channel)
        udf = spb.UdfPayload(payload=b"identity", format="symbol", name="identity")
        init = spb.Init(
            data_format=common_pb2.ARROW, udf=udf, input_schema=SCHEMA.serialize().to_pybytes()
        )
        return Stream(
            stub.Execute,
            spb.UdfRequest(control=spb.UdfControlRequest(init=init)),
            lambda data: spb.UdfRequest(data=spb.DataRequest(data=data)),
            spb.UdfRequest(control=spb.UdfControlRequest(finish=spb.Finish())),
        )


class Quiver(CompiledWorker):
    name = "quiver"
    secret = secrets.token_hex(16)

    def command(self) -> list[str]:
        return [str(self.worker), "--transport", "grpc", "--id", "bench"] + [
            "--connection",
            f"grpc+unix:{self.socket}",
        ]

    def env(self) -> dict[str, str]:
        return {**os.environ, "QUIVER_WORKER_SECRET": self.secret}

    def metadata(self) -> list[tuple[str, str]]:
        return [("quiver-secret", self.secret)]

    def heartbeat(self) -> None:
        from quiver._proto import pb
        from quiver.v1 import quiver_pb2_grpc

        stub = quiver_pb2_grpc.UdfWorkerStub(self.channel)
        request = pb.ManageRequest(heartbeat=pb.Heartbeat(nonce=1))
        stub.Manage(request, metadata=self.metadata(), timeout=1)

    def open(self) -> Stream:
        from quiver._proto import pb
        from quiver.v1 import quiver_pb2_grpc

        stub = quiver_pb2_grpc.UdfWorkerStub(self.channel)
        udf = pb.UdfDefinition(name="identity", payload_format="symbol", payload=b"identity")
        udf.argument_offsets.append(0)
        init = pb.Init(
            protocol_version=1,
            data_format=pb.ARROW_IPC_STREAM,
            udfs=[udf],
            input_schema=SCHEMA.serialize().to_pybytes(),
        )
        sequence = iter(range(1 << 62))
        return Stream(
            stub.Execute,
            pb.EngineMessage(init=init),
            lambda data: pb.EngineMessage(data=pb.Data(sequence=next(sequence), arrow_ipc=data)),
            pb.EngineMessage(finish=pb.Finish()),
            metadata=self.metadata(),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=sorted(WORKERS), default="cpp")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median printed)")
    parser.add_argument("--round-trips", type=int, default=2000, help="1-row batches per run")
    args = parser.parse_args()
    worker = WORKERS[args.worker]
    if not worker.exists():
        raise SystemExit(f"{worker} is not built (bash scripts/setup.sh --tests)")
    Spark.worker = Quiver.worker = worker
    cases: list[tuple[str, Callable[[Dialect], float]]] = [
        ("1-row round trip (us, lower is better)", lambda d: round_trip_us(d, args.round_trips)),
        ("1 MiB identity (MiB/s)", lambda d: throughput_mib_s(d, 1 << 20, 64)),
        ("16 MiB identity (MiB/s)", lambda d: throughput_mib_s(d, 16 << 20, 8)),
    ]
    with tempfile.TemporaryDirectory(prefix="qbench") as folder:
        dialects: list[Dialect] = [Spark(Path(folder)), Quiver(Path(folder))]
        try:
            print(f"{args.worker} worker")
            print(f"{'case':40} {'spark':>8} {'quiver.v1':>9} {'ratio':>6} {'ratio range':>13}")
            for title, measure in cases:
                figures: dict[str, list[float]] = {d.name: [] for d in dialects}
                measure(dialects[0]), measure(dialects[1])  # warm-up: first batches
                for _ in range(args.runs):
                    for dialect in dialects:
                        figures[dialect.name].append(measure(dialect))
                spark = statistics.median(figures["spark"])
                quiver = statistics.median(figures["quiver"])
                ratios = [a / b for a, b in zip(figures["spark"], figures["quiver"], strict=True)]
                print(
                    f"{title:40} {spark:8.1f} {quiver:9.1f} {statistics.median(ratios):6.3f} "
                    f"{min(ratios):6.3f}-{max(ratios):.3f}",
                    flush=True,
                )
        finally:
            for dialect in dialects:
                dialect.close()


if __name__ == "__main__":
    main()
