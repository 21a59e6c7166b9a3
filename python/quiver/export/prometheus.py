"""A Prometheus text endpoint for a session (``prometheus_client``, its own registry).

Each scrape reads ``Session.metrics()`` once and writes every series from it: nothing is
counted twice and nothing runs between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from quiver.errors import InvalidInput
from quiver.export.series import (
    COUNTER,
    SESSION_FIGURES,
    WORKER_FIGURES,
    WORKER_LABELS,
    Figure,
    MetricsSource,
    has,
    value,
    worker_samples,
)


class PrometheusServer:
    """The HTTP server of one session's endpoint, at :attr:`url`."""

    def __init__(self, server: Any, thread: Any, url: str) -> None:
        self._server = server
        self._thread = thread
        self.url = url

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def serve_prometheus(source: MetricsSource, where: int | str) -> PrometheusServer:
    """Serve ``source``'s figures at ``http://HOST:PORT/metrics``.

    ``where`` is a port (on 127.0.0.1, 0 for a free one) or ``"HOST:PORT"`` (``"0.0.0.0:9464"``
    for every interface, so that a Prometheus server on another machine can scrape).
    """
    from quiver.export import require

    client = require("prometheus_client", "prometheus-client", "prometheus_port")
    registry_module = require("prometheus_client.registry", "prometheus-client", "prometheus_port")
    host, port = _host_and_port(where)
    registry = registry_module.CollectorRegistry(auto_describe=False)
    registry.register(_SessionCollector(source))
    try:
        server, thread = client.start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise InvalidInput(
            f"quiver.Session(prometheus_port={where!r}): cannot listen on {host}:{port}: "
            f"{exc.strerror or exc}; pick a free port (0 takes any)"
        ) from exc
    bound_host, bound_port = server.server_address[:2]
    return PrometheusServer(server, thread, f"http://{bound_host}:{bound_port}/metrics")


def _host_and_port(where: int | str) -> tuple[str, int]:
    host, _, port = str(where).rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if isinstance(where, bool) or not 0 <= number <= 65535:
        raise InvalidInput(
            f"quiver.Session(prometheus_port={where!r}): give a port number (0 to 65535) or "
            '"HOST:PORT", such as 9464 or "0.0.0.0:9464"'
        )
    return host or "127.0.0.1", number


class _SessionCollector:
    """Turns one reading of the session's figures into Prometheus metric families."""

    def __init__(self, source: MetricsSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        metrics = self._source()
        for figure in SESSION_FIGURES:
            family = _family(figure, CounterMetricFamily, GaugeMetricFamily, [])
            family.add_metric([], value(figure, metrics))
            yield family
        samples = list(worker_samples(metrics))
        for figure in WORKER_FIGURES:
            family = _family(figure, CounterMetricFamily, GaugeMetricFamily, WORKER_LABELS)
            for sample in samples:
                if has(figure, sample.figures):
                    labels = [sample.labels[name] for name in WORKER_LABELS]
                    family.add_metric(labels, value(figure, sample.figures))
            yield family
        counters = CounterMetricFamily(
            COUNTER.prometheus, COUNTER.help, labels=[*WORKER_LABELS, "counter"]
        )
        for sample in samples:
            for name, count in sorted(sample.figures.get("counters", {}).items()):
                counters.add_metric([*(sample.labels[n] for n in WORKER_LABELS), name], count)
        yield counters


def _family(figure: Figure, counter: Any, gauge: Any, labels: Any) -> Any:
    kind = counter if figure.monotonic else gauge
    return kind(figure.prometheus, figure.help, labels=list(labels))
