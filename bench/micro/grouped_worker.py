"""The Python worker's cost per group of a grouped map, beside the pandas body's own cost.

Runs the worker's grouped-map path (quiver.worker.kinds) in process over one batch of GROUPS
groups of ROWS rows (bench/grouped_udfs.py's body) and the body alone over pre-sliced groups,
alternating, and prints the median CPU time (time.process_time, less exposed than wall time
to other processes on a shared machine) per group of each, and their difference: what the
worker adds per group.

    .venv/bin/python bench/micro/grouped_worker.py [--groups 655] [--rows 100] [--repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grouped_udfs import center  # noqa: E402
from quiver.worker import kinds  # noqa: E402
from quiver.worker.group_frames import plain_labels, split_frame  # noqa: E402


class _Untimed:
    """Stands in for the Execution: calls user code directly."""

    def _timed_user_call(self, name, func, *args):
        return func(*args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=655)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    numbers = np.repeat(np.arange(args.groups, dtype=np.int32), args.rows)
    rng = np.random.default_rng(1)
    batch = pa.record_batch(
        {"__group": numbers, "k": numbers.astype(np.int64), "x": rng.random(len(numbers))}
    )
    run = kinds.KindExecution.__new__(kinds.KindExecution)
    run.execution, run.kind = _Untimed(), kinds.GROUPED_MAP
    run.udfs, run.result_schema = [("center", (1, 2), center)], center.returns
    bounds = kinds.group_bounds(batch.column(0))
    groups = list(split_frame(plain_labels(batch.select([1, 2]).to_pandas()), bounds))
    groups = [group.copy() for group in groups]  # the body alone: no slicing in the timing

    def body() -> None:
        for group in groups:
            center.func(group)

    times: dict[str, list[float]] = {"worker": [], "body": []}
    for _ in range(args.repeats):
        for label, work in (("worker", lambda: run.run(batch)), ("body", body)):
            started = time.process_time()
            work()
            times[label].append((time.process_time() - started) / args.groups * 1e6)
    worker, alone = (statistics.median(times[k]) for k in ("worker", "body"))
    print(f"{args.groups} groups of {args.rows} rows, median of {args.repeats}, CPU per group:")
    print(f"  worker's grouped map  {worker:7.0f} us")
    print(f"  the body alone        {alone:7.0f} us")
    print(f"  added by the worker   {worker - alone:7.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
