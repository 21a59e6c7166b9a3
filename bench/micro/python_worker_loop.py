"""Round trips of the Python worker alone, driven over a real Unix socket by a small engine in
Python (python/tests/engine_harness.py): 1-row batches one at a time (median round trip) and
64 KiB / 1 MiB batches with a window of 4 in flight (throughput, one-way batch bytes per second).

    python bench/micro/python_worker_loop.py [--python-root DIR]

--python-root runs the worker from another checkout's python/ folder (e.g. main's), so that
before and after can be compared in one run. The engine side here is Python too: its own cost is
in every figure (compare figures of one run, not with the C++ engine's microbenchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python" / "tests"))

from engine_harness import EngineHarness, ipc_bytes, ref_udf  # noqa: E402

from quiver.protocol.framing import encode_data_frame  # noqa: E402
from quiver.transport.uds import read_frame, send_frame  # noqa: E402

IDENTITY = str(ROOT / "bench" / "micro" / "identity_udf.py") + ":identity"


def string_batch(total_bytes: int) -> pa.RecordBatch:
    """A batch of 64-byte strings holding about ``total_bytes`` of character data."""
    rows = max(1, total_bytes // 64)
    return pa.record_batch({"s": pa.array(["x" * 64] * rows)})


class Harness(EngineHarness):
    """Starts the worker from ``python_root``."""

    def __init__(self, python_root: Path) -> None:
        super().__init__()
        self.python_root = python_root

    def start(self, extra_args: tuple[str, ...] = ()):  # type: ignore[override]
        os.environ["PYTHONPATH"] = str(self.python_root)
        return super().start(extra_args)


def round_trips(harness: Harness, batch: pa.RecordBatch, count: int, window: int) -> list[float]:
    """Send ``count`` copies of ``batch`` keeping ``window`` in flight; return per-batch times.

    Batches are sent on a thread of their own while this one reads the answers, as an engine
    must (docs/protocol.md): a worker may block writing a result until it is read."""
    frame = [bytes(memoryview(b)) for b in encode_data_frame(0, ipc_bytes(batch))]
    started: list[float] = []
    room = threading.Semaphore(window)
    failure: list[BaseException] = []

    def send_all() -> None:
        try:
            for _ in range(count):
                room.acquire()
                started.append(time.perf_counter())
                send_frame(harness.sock, frame)
        except BaseException as exc:  # noqa: BLE001 - told to the reading thread
            failure.append(exc)

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    times = []
    for received in range(count):
        reply = read_frame(harness.sock)
        assert reply is not None and not reply.is_control, "the worker did not answer a batch"
        times.append(time.perf_counter() - started[received])
        room.release()
    sender.join()
    if failure:
        raise failure[0]
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python-root", type=Path, default=ROOT / "python")
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    harness = Harness(args.python_root)
    results = {"python_root": str(args.python_root)}
    try:
        harness.start()
        schema = pa.schema([pa.field("s", pa.string())])
        harness.start_execution([ref_udf("identity", IDENTITY, [0], pa.string())], schema)
        one = string_batch(1).slice(0, 1)
        round_trips(harness, one, 200, 1)  # warm up
        rtts = round_trips(harness, one, args.count, 1)
        results["one_row_rtt_us_median"] = statistics.median(rtts) * 1e6
        for label, size in (("64KiB", 64 << 10), ("1MiB", 1 << 20)):
            batch = string_batch(size)
            count = max(50, min(args.count, (256 << 20) // size))
            round_trips(harness, batch, 20, 4)
            start = time.perf_counter()
            round_trips(harness, batch, count, 4)
            elapsed = time.perf_counter() - start
            results[f"{label}_GBps"] = batch.get_total_buffer_size() * count / elapsed / 1e9
    finally:
        harness.close()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
