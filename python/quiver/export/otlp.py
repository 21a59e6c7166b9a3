"""OpenTelemetry metrics and spans over OTLP/HTTP for a session (the OpenTelemetry Python SDK).

The session's figures are observable instruments of a meter provider of its own (never the
process's global one): the SDK's periodic reader reads ``Session.metrics()`` every
``OTEL_METRIC_EXPORT_INTERVAL`` milliseconds (60 s by default) and once more when the session
closes, and posts them as cumulative sums. Each run (a map, apply, aggregate or flat_map) is
a span from its start to its end, with its rows and UDFs, and a child span per worker started
and per sampled batch (``trace_batches``), posted from a background thread. A
collector that does not answer never fails a map: the first failed export is said once, as a
:class:`MetricsExportWarning`.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from quiver.errors import InvalidInput
from quiver.export.series import (
    COUNTER,
    SESSION_FIGURES,
    WORKER_FIGURES,
    WORKER_NAME,
    Figure,
    MetricsSource,
    has,
    value,
    worker_samples,
)

# How long one export may wait for the collector: also how long close() may wait for one
# that does not answer.
EXPORT_TIMEOUT_SECONDS = 3.0

# The SDK's loggers that report a failed export; while quiver exports, the warning says it.
_EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk.metrics._internal.export",
)


RunWatcher = Callable[[Any, dict[str, Any]], None]


class OtlpExport:
    """A session's meter and tracer providers; :meth:`close` exports one last time."""

    def __init__(
        self, meters: Any, tracers: Any, warner: _Warner, spans: ThreadPoolExecutor | None = None
    ) -> None:
        self._meters = meters
        self._tracers = tracers
        self._warner = warner
        self._spans = spans

    def close(self) -> None:
        self._warner.closing = True  # a collector that failed the last export is not waited for
        if self._spans is not None:
            self._spans.shutdown(wait=True)  # the last runs' spans are made before the export
        if self._tracers is not None:
            self._tracers.shutdown()
        self._meters.shutdown(timeout_millis=int(2_000 + EXPORT_TIMEOUT_SECONDS * 1000))


def start_otlp(
    source: MetricsSource,
    endpoint: str,
    service_name: str,
    watch_runs: Callable[[RunWatcher], None] | None = None,
) -> OtlpExport:
    """Export ``source``'s figures to the OTLP/HTTP collector at ``endpoint``, and a span
    per run that ``watch_runs`` reports."""
    from quiver.export import require

    package = "opentelemetry-exporter-otlp-proto-http"
    require("opentelemetry.sdk.metrics", "opentelemetry-sdk", "otlp_endpoint")
    metric_module = require(
        "opentelemetry.exporter.otlp.proto.http.metric_exporter", package, "otlp_endpoint"
    )
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    base = base_url(endpoint)
    warner = _Warner(base)
    exporter = _warning_exporter(metric_module.OTLPMetricExporter, warner)(
        endpoint=base + "/v1/metrics", timeout=EXPORT_TIMEOUT_SECONDS
    )
    reader = PeriodicExportingMetricReader(exporter)
    resource = Resource.create({"service.name": service_name})
    meters = MeterProvider(metric_readers=[reader], resource=resource)
    _observe(meters.get_meter("quiver"), _Reading(source))
    tracers = spans = None
    if watch_runs is not None:
        tracers = _tracer_provider(base, resource, warner)
        # Off the thread that ended the run: a run's last read does not wait for its spans
        # (a span per sampled batch costs the SDK tens of microseconds each).
        spans = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quiver-spans")
        watch_runs(_in_background(spans, _span_per_run(tracers.get_tracer("quiver"))))
    return OtlpExport(meters, tracers, warner, spans)


def base_url(endpoint: str) -> str:
    """The collector's base URL, to which OTLP/HTTP adds ``/v1/metrics`` and ``/v1/traces``
    (a URL given with ``/v1/metrics`` is taken for its base)."""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(
            f"quiver.Session(otlp_endpoint={endpoint!r}): give the collector's OTLP/HTTP URL, "
            'such as "http://localhost:4318"'
        )
    path = parts.path.rstrip("/").removesuffix("/v1/metrics")
    return urllib.parse.urlunsplit(parts._replace(path=path, query="", fragment=""))


def _tracer_provider(base: str, resource: Any, warner: _Warner) -> Any:
    from quiver.export import require

    trace_module = require(
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry-exporter-otlp-proto-http",
        "otlp_endpoint",
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = _warning_exporter(trace_module.OTLPSpanExporter, warner)(
        endpoint=base + "/v1/traces", timeout=EXPORT_TIMEOUT_SECONDS
    )
    tracers = TracerProvider(resource=resource)
    # In the background: a run's end (its reader's last read) never waits for the collector.
    tracers.add_span_processor(BatchSpanProcessor(exporter))
    return tracers


def _in_background(spans: ThreadPoolExecutor, record: RunWatcher) -> RunWatcher:
    def submit(run: Any, figures: dict[str, Any]) -> None:
        try:
            spans.submit(record, run, figures)
        except RuntimeError:  # the export closed: a run cut off by close() has no span
            pass

    return submit


def _span_per_run(tracer: Any) -> RunWatcher:
    """A span per run, from its start to its end, with its figures as attributes; under it
    a span per worker started and per sampled batch (docs/metrics.md, "Spans")."""

    def record(run: Any, figures: dict[str, Any]) -> None:
        if run is None:
            return
        groups = figures.get("groups", [])
        attributes = {
            "quiver.udfs": [name for group in groups for name in group.get("udfs", [])],
            "quiver.input.rows": figures.get("rows", 0),
            "quiver.input.batches": figures.get("batches", 0),
            "quiver.rows_out": sum(group.get("rows_out", 0) for group in groups),
            "quiver.udf.time": figures.get("udf_nanos", 0) * 1e-9,
        }
        try:
            from opentelemetry import trace

            spans = figures.get("spans", {})
            # The engine starts a map's workers before the session hands the run out: the run
            # began when its first worker was asked for.
            children = [*spans.get("worker_starts", []), *spans.get("batches", [])]
            started = min([run.started_ns, *(c["start_unix_nanos"] for c in children)])
            name = f"quiver.{run.kind}"
            span = tracer.start_span(name, start_time=started, attributes=attributes)
            under = trace.set_span_in_context(span)
            for start in spans.get("worker_starts", []):
                _child(tracer, under, "quiver.worker.start", start, worker_start_attributes(start))
            for batch in spans.get("batches", []):
                _child(tracer, under, "quiver.batch", batch, batch_attributes(batch))
            span.end()
        except Exception:  # noqa: S110 - a span is never worth failing the user's read
            pass

    return record


def _child(tracer: Any, under: Any, name: str, times: dict[str, Any], attributes: Any) -> None:
    child = tracer.start_span(
        name, context=under, start_time=times["start_unix_nanos"], attributes=attributes
    )
    child.end(end_time=times["end_unix_nanos"])


def _worker_labels(span: dict[str, Any]) -> dict[str, str]:
    match = WORKER_NAME.fullmatch(span["worker"])
    worker_id, pid = match.groups() if match else (span["worker"], str(span.get("pid", "")))
    return {
        "quiver.udf_group": ",".join(span["udfs"]),
        "quiver.worker": worker_id,
        "quiver.pid": pid,
        "quiver.worker.index": span["index"],
    }


def worker_start_attributes(start: dict[str, Any]) -> dict[str, Any]:
    """A worker start span's attributes, named as ``quiver run --otlp-endpoint`` names them."""
    return {**_worker_labels(start), "quiver.runtime": start["runtime"] or "py"}


def batch_attributes(batch: dict[str, Any]) -> dict[str, Any]:
    """A sampled batch span's attributes, named as ``quiver run --otlp-endpoint`` names them."""
    return {
        **_worker_labels(batch),
        "quiver.batch.index": batch["batch"],
        "quiver.batch.rows_in": batch["rows_in"],
        "quiver.batch.rows_out": batch["rows_out"],
        "quiver.batch.bytes_in": batch["bytes_in"],
        "quiver.batch.bytes_out": batch["bytes_out"],
        "quiver.batch.worker_time": batch["worker_nanos"] * 1e-9,
    }


class _Reading:
    """One reading of the figures shared by the instruments' callbacks of one collection."""

    def __init__(self, source: MetricsSource) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._taken = -1.0
        self._metrics: dict[str, Any] = {}

    def __call__(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            if now - self._taken > 0.5:  # a collection calls every callback within this
                self._metrics = self._source()
                self._taken = now
            return self._metrics


def _observe(meter: Any, reading: _Reading) -> None:
    from opentelemetry.metrics import Observation

    def session_callback(figure: Figure) -> Callable[[Any], Iterable[Any]]:
        return lambda _options: [Observation(value(figure, reading()))]

    def worker_callback(figure: Figure) -> Callable[[Any], Iterable[Any]]:
        def observe(_options: Any) -> Iterable[Any]:
            for sample in worker_samples(reading()):
                if has(figure, sample.figures):
                    yield Observation(value(figure, sample.figures), _attributes(sample.labels))

        return observe

    def counters(_options: Any) -> Iterable[Any]:
        for sample in worker_samples(reading()):
            for name, count in sample.figures.get("counters", {}).items():
                yield Observation(count, {**_attributes(sample.labels), "quiver.counter": name})

    for figure in SESSION_FIGURES:
        _instrument(meter, figure, session_callback(figure))
    for figure in WORKER_FIGURES:
        _instrument(meter, figure, worker_callback(figure))
    _instrument(meter, COUNTER, counters)


def _instrument(meter: Any, figure: Figure, callback: Callable[[Any], Iterable[Any]]) -> None:
    create = meter.create_observable_counter if figure.monotonic else meter.create_observable_gauge
    create(figure.otel, callbacks=[callback], unit=figure.unit, description=figure.help)


def _attributes(labels: dict[str, str]) -> dict[str, str]:
    return {f"quiver.{name}": label for name, label in labels.items()}


_exporting = threading.local()


class _QuietWhileExporting(logging.Filter):
    """Drops the SDK's own failure records while quiver exports: the warning says it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_exporting, "active", False)


_quiet = _QuietWhileExporting()
for _name in _EXPORT_LOGGERS:
    logging.getLogger(_name).addFilter(_quiet)


class _Warner:
    """Says the first failed export of a session, metrics or spans, once; knows whether the
    last one failed, so that closing does not wait for a collector that is not there."""

    def __init__(self, base: str) -> None:
        self._base = base
        self._lock = threading.Lock()
        self._warned = False
        self.last_failed = False
        self.closing = False

    def failed(self, url: str, reason: str) -> None:
        with self._lock:
            if self._warned:
                return
            self._warned = True
        from quiver.export import MetricsExportWarning

        warnings.warn(
            f"quiver: could not export the session's metrics to {url} (OTLP/HTTP): the "
            f"collector did not take them ({reason}); maps go on, later failures are not said "
            f"again. Check that a collector listens at {self._base} (otlp_endpoint=).",
            MetricsExportWarning,
            stacklevel=1,
        )


def _warning_exporter(base: type, warner: _Warner) -> type:
    """``base`` (one of the SDK's OTLP exporters) that says a failure once and never raises."""

    class WarningExporter(base):  # type: ignore[misc, valid-type]
        def export(self, *args: Any, **kw: Any) -> Any:
            if warner.closing and warner.last_failed:
                return _failure(base)
            _exporting.active = True
            try:
                result = super().export(*args, **kw)
                reason = "no answer or an error status"
            except Exception as exc:  # noqa: BLE001 - an export never fails the session
                result, reason = None, str(exc)
            finally:
                _exporting.active = False
            warner.last_failed = getattr(result, "name", "") != "SUCCESS"
            if warner.last_failed:
                warner.failed(self._endpoint, reason)
                return type(result).FAILURE if result is not None else _failure(base)
            return result

    return WarningExporter


def _failure(base: type) -> Any:
    if "trace" in base.__module__:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.FAILURE
    from opentelemetry.sdk.metrics.export import MetricExportResult

    return MetricExportResult.FAILURE
