"""The Python worker in Spark's dialect beside the same worker in quiver.v1 over grpc+unix.

    .venv/bin/python bench/spark_dialect.py [--runs 5]

Both workers are real processes (``python -m quiver.worker``) on a Unix socket, driven by the same
kind of grpcio client from this process, one Execute stream each: 1-row batches one at a time
(median round trip, microseconds) and 1 MiB / 16 MiB string batches through the identity UDF with
4 in flight (MiB/s of batch bytes one way). Runs alternate between the dialects; each figure is
the median of ``--runs`` runs, and the ratio is the median of the run-by-run ratios (spark run /
the quiver.v1 run next to it, with their range), which holds when a shared machine's speed
drifts. The client is Python on both sides: its cost is in every figure, the
same for both (compare the two columns, not with the C++ engine's microbenchmarks).
"""

from __future__ import annotations

import argparse
import os
import queue
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
IDENTITY = f"{ROOT / 'bench' / 'micro' / 'identity_udf.py'}:identity"
SCHEMA = pa.schema([("s", pa.string())])
WINDOW = 4
_CLOSE = object()


def string_batch(total_bytes: int) -> pa.RecordBatch:
    """A batch of 64-byte strings holding about ``total_bytes`` of character data."""
    rows = max(1, total_bytes // 64)
    return pa.record_batch({"s": pa.array(["x" * 64] * rows)}, schema=SCHEMA)


def ipc_stream(batch: pa.RecordBatch) -> bytes:
    """One batch as a self-contained Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


class Dialect:
    """One worker process and how to speak to it: messages in, responses out."""

    name = ""
    # The worker's program and the identity UDF it is given; a compiled SDK worker
    # (bench/sdk_dialects.py) names its binary and its registered symbol instead.
    worker_command: list[str] = [sys.executable, "-m", "quiver.worker"]
    payload_format = "python/ref"
    payload = IDENTITY.encode()
    cwd: Path | None = ROOT / "python"
    channel_options: list[tuple[str, object]] = [
        ("grpc.max_receive_message_length", -1),
        ("grpc.max_send_message_length", -1),
    ]

    def __init__(self, folder: Path) -> None:
        self.socket = folder / f"{self.name}.sock"
        self.process = subprocess.Popen(self.command(), env=self.env(), cwd=self.cwd)
        self.channel = grpc.insecure_channel(f"unix:{self.socket}", options=self.channel_options)
        self.wait_ready()

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.heartbeat()
                return
            except grpc.RpcError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit(f"the {self.name} worker did not start") from None
                time.sleep(0.05)

    def heartbeat(self) -> None:
        raise NotImplementedError

    def open(self) -> Stream:
        raise NotImplementedError

    def close(self) -> None:
        self.channel.close()
        self.process.terminate()
        self.process.wait(30)


class Stream:
    """One Execute stream: ``send(bytes of one batch)``, ``recv()`` a result, ``close()``."""

    def __init__(
        self,
        call: Callable[..., Iterator[object]],
        init: object,
        data: Callable[[bytes], object],
        finish: object,
        **call_args: object,
    ) -> None:
        self._requests: queue.Queue[object] = queue.Queue()
        self._data = data
        self._finish = finish
        self.responses = call(iter(self._requests.get, _CLOSE), **call_args)
        self._requests.put(init)
        next(self.responses)  # InitResponse

    def send(self, arrow_ipc: bytes) -> None:
        self._requests.put(self._data(arrow_ipc))

    def recv(self) -> None:
        next(self.responses)

    def close(self) -> None:
        self._requests.put(self._finish)
        next(self.responses)  # FinishResponse
        self._requests.put(_CLOSE)


class Spark(Dialect):
    name = "spark"

    def command(self) -> list[str]:
        return (
            self.worker_command
            + ["--dialect", "spark", "--id", "bench"]
            + [
                "--connection",
                str(self.socket),
            ]
        )

    def heartbeat(self) -> None:
        from quiver.spark_dialect.proto import udf_message_pb2 as spb
        from quiver.spark_dialect.proto import udf_service_pb2_grpc

        stub = udf_service_pb2_grpc.UdfWorkerStub(self.channel)
        stub.Manage(spb.WorkerRequest(heartbeat=spb.Heartbeat()), timeout=1)

    def open(self) -> Stream:
        from quiver.spark_dialect.proto import common_pb2, udf_service_pb2_grpc
        from quiver.spark_dialect.proto import udf_message_pb2 as spb

        stub = udf_service_pb2_grpc.UdfWorkerStub(self.channel)
        udf = spb.UdfPayload(payload=self.payload, format=self.payload_format, name="identity")
        init = spb.Init(
            data_format=common_pb2.ARROW, udf=udf, input_schema=SCHEMA.serialize().to_pybytes()
        )
        return Stream(
            stub.Execute,
            spb.UdfRequest(control=spb.UdfControlRequest(init=init)),
            lambda data: spb.UdfRequest(data=spb.DataRequest(data=data)),
            spb.UdfRequest(control=spb.UdfControlRequest(finish=spb.Finish())),
        )


class Quiver(Dialect):
    name = "quiver"
    secret = secrets.token_hex(16)

    def command(self) -> list[str]:
        return (
            self.worker_command
            + ["--transport", "grpc", "--id", "bench"]
            + [
                "--connection",
                f"grpc+unix:{self.socket}",
            ]
        )

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
        udf = pb.UdfDefinition(
            name="identity", payload_format=self.payload_format, payload=self.payload
        )
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


def round_trip_us(dialect: Dialect, count: int) -> float:
    """Median microseconds of a 1-row batch's round trip, one batch at a time."""
    stream = dialect.open()
    data = ipc_stream(string_batch(1))
    times = []
    for _ in range(count):
        started = time.perf_counter()
        stream.send(data)
        stream.recv()
        times.append(time.perf_counter() - started)
    stream.close()
    return statistics.median(times) * 1e6


def throughput_mib_s(dialect: Dialect, batch_bytes: int, count: int) -> float:
    """MiB/s of batch bytes through the identity UDF, ``WINDOW`` batches in flight."""
    stream = dialect.open()
    data = ipc_stream(string_batch(batch_bytes))
    slots = threading.Semaphore(WINDOW)

    def feed() -> None:
        for _ in range(count):
            slots.acquire()
            stream.send(data)

    started = time.perf_counter()
    sender = threading.Thread(target=feed)
    sender.start()
    for _ in range(count):
        stream.recv()
        slots.release()
    elapsed = time.perf_counter() - started
    sender.join()
    stream.close()
    return len(data) * count / elapsed / (1 << 20)


def measured_cases(round_trips: int) -> list[tuple[str, Callable[[Dialect], float]]]:
    """The three figures both dialect benchmarks print, each a function of one dialect."""
    return [
        ("1-row round trip (us, lower is better)", lambda d: round_trip_us(d, round_trips)),
        ("1 MiB identity (MiB/s)", lambda d: throughput_mib_s(d, 1 << 20, 64)),
        ("16 MiB identity (MiB/s)", lambda d: throughput_mib_s(d, 16 << 20, 8)),
    ]


def compare(spark: Dialect, quiver: Dialect, round_trips: int, runs: int) -> None:
    """Print each case's median in both dialects and the median of the run-by-run ratios."""
    print(f"{'case':40} {'spark':>8} {'quiver.v1':>9} {'ratio':>6} {'ratio range':>13}")
    for title, measure in measured_cases(round_trips):
        measure(spark), measure(quiver)  # warm-up: imports, first batches
        figures: dict[str, list[float]] = {"spark": [], "quiver": []}
        for _ in range(runs):
            figures["spark"].append(measure(spark))
            figures["quiver"].append(measure(quiver))
        ratios = [a / b for a, b in zip(figures["spark"], figures["quiver"], strict=True)]
        print(
            f"{title:40} {statistics.median(figures['spark']):8.1f} "
            f"{statistics.median(figures['quiver']):9.1f} {statistics.median(ratios):6.3f} "
            f"{min(ratios):6.3f}-{max(ratios):.3f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median printed)")
    parser.add_argument("--round-trips", type=int, default=2000, help="1-row batches per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qbench") as folder:
        dialects = [Spark(Path(folder)), Quiver(Path(folder))]
        try:
            compare(dialects[0], dialects[1], args.round_trips, args.runs)
        finally:
            for dialect in dialects:
                dialect.close()


if __name__ == "__main__":
    main()
