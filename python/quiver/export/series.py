"""The figures of ``Session.metrics()`` as labelled series, named once for both exporters.

Workers are the finest grain the figures have: each worker of each group of UDFs is one
series per figure, labelled with the group's UDFs, the worker's id and its pid (a worker that
is started again is a new series, so every counter only grows). A group's total is the sum
over its workers (``peak_rss``: the largest), which the collector computes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

MetricsSource = Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class Figure:
    """One figure of docs/metrics.md and its names in Prometheus and OpenTelemetry."""

    key: str  # its name in Session.metrics() and --metrics FILE
    prometheus: str  # without the _total a counter's samples get
    otel: str
    unit: str  # UCUM, as OpenTelemetry writes it
    scale: float  # from the key's unit to the exported one (ns to s)
    monotonic: bool  # a counter; else a gauge
    help: str


def _seconds(key: str, prometheus: str, otel: str, what: str) -> Figure:
    return Figure(key, prometheus, otel, "s", 1e-9, True, what)


WORKER_FIGURES = (
    Figure(
        "batches",
        "quiver_batches",
        "quiver.batches",
        "{batch}",
        1,
        True,
        "Batches sent to the worker.",
    ),
    Figure(
        "rows_in",
        "quiver_rows_in",
        "quiver.rows_in",
        "{row}",
        1,
        True,
        "Rows of the batches sent to the worker.",
    ),
    Figure(
        "rows_out",
        "quiver_rows_out",
        "quiver.rows_out",
        "{row}",
        1,
        True,
        "Rows of the results the worker sent back.",
    ),
    Figure(
        "bytes_in",
        "quiver_bytes_in",
        "quiver.bytes_in",
        "By",
        1,
        True,
        "Arrow buffer bytes of the argument columns sent to the worker.",
    ),
    Figure(
        "bytes_out",
        "quiver_bytes_out",
        "quiver.bytes_out",
        "By",
        1,
        True,
        "Arrow buffer bytes of the results the worker sent back.",
    ),
    _seconds(
        "udf_nanos",
        "quiver_udf_seconds",
        "quiver.udf.time",
        "Time inside the UDFs' bodies, measured by the worker.",
    ),
    _seconds(
        "codec_nanos",
        "quiver_codec_seconds",
        "quiver.codec.time",
        "Time the worker spent decoding arguments and encoding results.",
    ),
    _seconds(
        "cpu_nanos",
        "quiver_cpu_seconds",
        "quiver.cpu.time",
        "CPU time, user and system, of the worker process during executions.",
    ),
    _seconds(
        "wait_nanos",
        "quiver_wait_seconds",
        "quiver.wait.time",
        "Time the engine was blocked waiting for the worker's answers.",
    ),
    Figure(
        "peak_rss_bytes",
        "quiver_peak_rss_bytes",
        "quiver.peak_rss",
        "By",
        1,
        False,
        "The worker process's peak resident memory.",
    ),
)

SESSION_FIGURES = (
    Figure(
        "batches",
        "quiver_input_batches",
        "quiver.input.batches",
        "{batch}",
        1,
        True,
        "Batches read from the session's inputs.",
    ),
    Figure(
        "rows",
        "quiver_input_rows",
        "quiver.input.rows",
        "{row}",
        1,
        True,
        "Rows read from the session's inputs.",
    ),
    Figure(
        "bytes_in",
        "quiver_input_bytes",
        "quiver.input.bytes",
        "By",
        1,
        True,
        "Arrow buffer bytes of the UDF arguments read from the inputs.",
    ),
    _seconds(
        "read_nanos",
        "quiver_read_seconds",
        "quiver.read.time",
        "Time reading the session's inputs.",
    ),
)

COUNTER = Figure(
    "counters",
    "quiver_udf_counter",
    "quiver.udf.counter",
    "1",
    1,
    True,
    "The UDFs' own counters (quiver.metrics.counter), by name.",
)

WORKER_LABELS = ("udf_group", "worker", "pid")

WORKER_NAME = re.compile(r"worker (\S+) \(pid (\d+)\)")


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    figures: dict[str, Any]


def worker_samples(metrics: dict[str, Any]) -> Iterator[Sample]:
    """Each worker's figures with its labels; a group without workers counts as one."""
    for group in metrics.get("groups", []):
        udf_group = ",".join(group.get("udfs", []))
        for worker in group.get("workers") or [group]:
            match = WORKER_NAME.fullmatch(str(worker.get("worker", "")))
            worker_id, pid = match.groups() if match else (str(worker.get("worker", "")), "")
            yield Sample({"udf_group": udf_group, "worker": worker_id, "pid": pid}, worker)


def has(figure: Figure, figures: dict[str, Any]) -> bool:
    """Whether ``figures`` measured ``figure`` (a figure the engine does not give is left
    out, rather than exported as 0)."""
    return figure.key in figures


def value(figure: Figure, figures: dict[str, Any]) -> float:
    """The figure in its exported unit."""
    raw = figures.get(figure.key, 0)
    return raw * figure.scale if figure.scale != 1 else raw
