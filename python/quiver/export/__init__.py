"""Standard export of a session's figures (docs/metrics.md, "Export"): a Prometheus text
endpoint (``prometheus_client``) and OpenTelemetry over OTLP/HTTP (the OpenTelemetry SDK).

Both read ``Session.metrics()`` when they are asked (a scrape, an export interval), so a run
costs nothing more with export on; both libraries are optional and imported only here, when a
session asks for them.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import Any

from quiver.export.series import MetricsSource

__all__ = ["Exports", "MetricsExportWarning", "start_exports"]


class MetricsExportWarning(RuntimeWarning):
    """The session's figures could not be exported (said once per session)."""


class Exports:
    """The exporters a session started; :meth:`close` stops them (a last OTLP export)."""

    def __init__(self) -> None:
        self.prometheus_url: str | None = None
        self._closers: list[Callable[[], None]] = []

    def add(self, close: Callable[[], None]) -> None:
        self._closers.append(close)

    def close(self) -> None:
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            close()


def start_exports(
    source: MetricsSource,
    prometheus_port: int | str | None,
    otlp_endpoint: str | None,
    session_name: str = "quiver",
    watch_runs: Callable[[Callable[[Any, dict[str, Any]], None]], None] | None = None,
) -> Exports:
    """Start what the session asked for: nothing at all by default."""
    exports = Exports()
    source = _weak(source)
    try:
        if prometheus_port is not None:
            from quiver.export.prometheus import serve_prometheus

            server = serve_prometheus(source, prometheus_port)
            exports.prometheus_url = server.url
            exports.add(server.close)
        if otlp_endpoint is not None:
            from quiver.export.otlp import start_otlp

            otlp = start_otlp(source, otlp_endpoint, session_name, watch_runs)
            exports.add(otlp.close)
    except BaseException:
        exports.close()
        raise
    return exports


def _weak(source: MetricsSource) -> MetricsSource:
    """``source`` without keeping its session alive: a server thread must not stop the
    session from being collected (and so closed)."""
    if not inspect.ismethod(source):
        return source
    method = weakref.WeakMethod(source)

    def read() -> dict[str, Any]:
        bound = method()
        return bound() if bound is not None else {"groups": []}

    return read


def require(module: str, package: str, argument: str) -> Any:
    """Import ``module`` of an optional package, or say which package to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"quiver.Session({argument}=...) needs the {package} package, which is not "
            f"installed: `pip install {package}` (or `pip install 'quiver[export]'`)"
        ) from exc
