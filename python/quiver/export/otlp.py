"""OpenTelemetry metrics over OTLP/HTTP for a session (the OpenTelemetry Python SDK).

The session's figures are observable instruments of a meter provider of its own (never the
process's global one): the SDK's periodic reader reads ``Session.metrics()`` every
``OTEL_METRIC_EXPORT_INTERVAL`` milliseconds (60 s by default) and once more when the session
closes, and posts them as cumulative sums. A collector that does not answer never fails a
map: the first failed export is said once, as a :class:`MetricsExportWarning`.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from quiver.errors import InvalidInput
from quiver.export.series import (
    COUNTER,
    SESSION_FIGURES,
    WORKER_FIGURES,
    Figure,
    MetricsSource,
    value,
    worker_samples,
)

# How long one export may wait for the collector: also how long close() may wait for one
# that does not answer.
EXPORT_TIMEOUT_SECONDS = 5.0

# The SDK's loggers that report a failed export; while quiver exports, the warning says it.
_EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk.metrics._internal.export",
)


class OtlpExport:
    """A session's meter provider; :meth:`close` exports one last time and stops it."""

    def __init__(self, provider: Any) -> None:
        self._provider = provider

    def close(self) -> None:
        self._provider.shutdown(timeout_millis=2_000 + EXPORT_TIMEOUT_SECONDS * 1000)


def start_otlp(source: MetricsSource, endpoint: str, service_name: str) -> OtlpExport:
    """Export ``source``'s figures to the OTLP/HTTP collector at ``endpoint``."""
    from quiver.export import require

    package = "opentelemetry-exporter-otlp-proto-http"
    require("opentelemetry.sdk.metrics", "opentelemetry-sdk", "otlp_endpoint")
    exporter_module = require(
        "opentelemetry.exporter.otlp.proto.http.metric_exporter", package, "otlp_endpoint"
    )
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    url = metrics_url(endpoint)
    exporter = _warning_exporter(exporter_module.OTLPMetricExporter)(
        endpoint=url, timeout=EXPORT_TIMEOUT_SECONDS
    )
    reader = PeriodicExportingMetricReader(exporter)
    resource = Resource.create({"service.name": service_name})
    provider = MeterProvider(metric_readers=[reader], resource=resource)
    _observe(provider.get_meter("quiver"), _Reading(source))
    return OtlpExport(provider)


def metrics_url(endpoint: str) -> str:
    """The metrics path of a collector's base URL (``http://host:4318``), as OTLP/HTTP has it;
    a URL with a path is taken as it is."""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(
            f"quiver.Session(otlp_endpoint={endpoint!r}): give the collector's OTLP/HTTP URL, "
            'such as "http://localhost:4318"'
        )
    if parts.path in ("", "/"):
        return urllib.parse.urlunsplit(parts._replace(path="/v1/metrics"))
    return endpoint


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


def _warning_exporter(base: type) -> type:
    """``base`` (the SDK's OTLP exporter) that says its first failure once and never raises."""

    class WarningExporter(base):  # type: ignore[misc, valid-type]
        _warned = False

        def export(
            self, metrics_data: Any, timeout_millis: float | None = 10_000, **kw: Any
        ) -> Any:
            _exporting.active = True
            try:
                result = super().export(metrics_data, timeout_millis, **kw)
            except Exception as exc:  # noqa: BLE001 - an export never fails the session
                result = exc
            finally:
                _exporting.active = False
            if getattr(result, "name", "") != "SUCCESS" and not self._warned:
                self._warned = True
                from quiver.export import MetricsExportWarning

                warnings.warn(
                    f"quiver: could not export the session's metrics to {self._endpoint} "
                    f"(OTLP/HTTP): the collector did not take them ({_reason(result)}); maps "
                    "go on, later failures are not said again. Check that a collector listens "
                    "there (otlp_endpoint=).",
                    MetricsExportWarning,
                    stacklevel=2,
                )
            return result if not isinstance(result, Exception) else _failure()

    return WarningExporter


def _reason(result: Any) -> str:
    return str(result) if isinstance(result, Exception) else "no answer or an error status"


def _failure() -> Any:
    from opentelemetry.sdk.metrics.export import MetricExportResult

    return MetricExportResult.FAILURE
