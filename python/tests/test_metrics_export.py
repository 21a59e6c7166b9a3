"""Export of a session's metrics: a real Prometheus scrape over loopback, and a real OTLP/HTTP
receiver on loopback that decodes what the session posts with opentelemetry-proto's classes."""

from __future__ import annotations

import gzip
import http.server
import socket
import sys
import threading
import urllib.request
import warnings
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

import quiver
from quiver.errors import InvalidInput

pytest.importorskip("quiver._engine", reason="quiver._engine is not built (scripts/setup.sh)")

ROWS = 1000
BATCH_ROWS = 100


@quiver.udf(returns="int64")
def count_even(x: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    even = pc.equal(pc.bit_wise_and(x, 1), 0)
    quiver.metrics.counter("even_seen").add(pc.sum(even.cast("int64")).as_py() or 0)
    return pc.add(x, 1)


@quiver.grouped_map(returns="k string, x double")
def same_group(group: Any) -> Any:
    return group


def _table() -> pa.Table:
    return pa.table({"x": pa.array(range(ROWS), pa.int64())})


def _map(session: quiver.Session) -> pa.Table:
    out = session.map(_table(), [quiver.call(count_even, "x")], batch_rows=BATCH_ROWS)
    return out.read_all()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Prometheus ---------------------------------------------------------------------------


def _scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(value for _, value in samples.get(name, []))


def test_a_scrape_after_a_map_has_its_rows_batches_and_counter() -> None:
    pytest.importorskip("prometheus_client")
    with quiver.Session(workers=2, prometheus_port=0) as s:
        assert s.prometheus_url is not None
        assert s.prometheus_url.startswith("http://127.0.0.1:")
        before = _scrape(s.prometheus_url)
        assert _total(before, "quiver_input_rows_total") == 0
        out = _map(s)
        after = _scrape(s.prometheus_url)
    assert out.num_rows == ROWS
    assert _total(after, "quiver_input_rows_total") == ROWS
    assert _total(after, "quiver_rows_in_total") == ROWS
    assert _total(after, "quiver_rows_out_total") == out.num_rows
    assert _total(after, "quiver_batches_total") == ROWS // BATCH_ROWS
    assert _total(after, "quiver_bytes_in_total") == ROWS * 8  # one int64 column
    counters = after["quiver_udf_counter_total"]
    assert {labels["counter"] for labels, _ in counters} == {"even_seen"}
    assert sum(value for _, value in counters) == ROWS // 2
    workers = {(labels["worker"], labels["pid"]) for labels, _ in after["quiver_rows_in_total"]}
    assert len(workers) == 2
    assert all(worker.isdigit() and pid.isdigit() for worker, pid in workers)
    assert {labels["udf_group"] for labels, _ in after["quiver_rows_in_total"]} == {"count_even"}
    assert all(value > 0 for _, value in after["quiver_udf_seconds_total"])
    assert all(value > 1e6 for _, value in after["quiver_peak_rss_bytes"])  # bytes, not MiB


def test_a_second_map_adds_to_the_scraped_counters() -> None:
    pytest.importorskip("prometheus_client")
    with quiver.Session(workers=1, prometheus_port=0) as s:
        _map(s)
        _map(s)
        after = _scrape(s.prometheus_url or "")
    assert _total(after, "quiver_rows_in_total") == 2 * ROWS
    assert _total(after, "quiver_udf_counter_total") == ROWS


def test_the_endpoint_stops_with_the_session() -> None:
    pytest.importorskip("prometheus_client")
    s = quiver.Session(workers=1, prometheus_port=0)
    url = s.prometheus_url or ""
    _scrape(url)
    s.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)


def test_a_port_in_use_is_said_with_the_port() -> None:
    pytest.importorskip("prometheus_client")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InvalidInput, match=f"cannot listen on 127.0.0.1:{port}"):
            quiver.Session(workers=1, prometheus_port=port)


@pytest.mark.parametrize("where", ["http", -1, 70000, "host:port"])
def test_a_port_that_is_not_one_is_refused(where: object) -> None:
    pytest.importorskip("prometheus_client")
    with pytest.raises(InvalidInput, match="give a port number"):
        quiver.Session(workers=1, prometheus_port=where)  # type: ignore[arg-type]


def test_a_missing_prometheus_client_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match="pip install prometheus-client"):
        quiver.Session(workers=1, prometheus_port=0)


# --- OpenTelemetry over OTLP/HTTP ---------------------------------------------------------


class _Receiver(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP receiver: keeps every ExportMetricsServiceRequest (``requests``) and
    ExportTraceServiceRequest (``traces``) posted to it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.requests: list[object] = []
        self.traces: list[object] = []
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ReceiverHandler(http.server.BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        traces = self.path == "/v1/traces"
        service = trace_service_pb2 if traces else metrics_service_pb2
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        assert self.headers["Content-Type"] == "application/x-protobuf"
        if traces:
            request, answer = (
                service.ExportTraceServiceRequest(),
                service.ExportTraceServiceResponse(),
            )
        else:
            request = service.ExportMetricsServiceRequest()
            answer = service.ExportMetricsServiceResponse()
        request.ParseFromString(body)
        self.server.paths.append(self.path)
        (self.server.traces if traces else self.server.requests).append(request)
        answer = answer.SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    pytest.importorskip("opentelemetry.proto")
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _points(request: object, name: str) -> list[tuple[dict[str, str], float]]:
    """The data points of metric ``name`` in one request, with their attributes."""
    points = []
    for resource_metrics in request.resource_metrics:  # type: ignore[attr-defined]
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != name:
                    continue
                data = metric.sum if metric.HasField("sum") else metric.gauge
                for point in data.data_points:
                    value = point.as_int if point.HasField("as_int") else point.as_double
                    labels = {a.key: a.value.string_value for a in point.attributes}
                    points.append((labels, value))
    return points


def test_the_session_posts_its_metrics_to_an_otlp_receiver(receiver: _Receiver) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an export that works says nothing
        with quiver.Session(workers=2, otlp_endpoint=receiver.url) as s:
            out = _map(s)
    assert receiver.requests, "the session closed without exporting"
    assert set(receiver.paths) == {"/v1/metrics", "/v1/traces"}
    last = receiver.requests[-1]  # cumulative sums: the last export has every run
    resource = last.resource_metrics[0].resource  # type: ignore[attr-defined]
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "quiver"
    assert sum(v for _, v in _points(last, "quiver.input.rows")) == ROWS
    assert sum(v for _, v in _points(last, "quiver.rows_in")) == ROWS
    assert sum(v for _, v in _points(last, "quiver.rows_out")) == out.num_rows
    assert sum(v for _, v in _points(last, "quiver.batches")) == ROWS // BATCH_ROWS
    counters = _points(last, "quiver.udf.counter")
    assert {labels["quiver.counter"] for labels, _ in counters} == {"even_seen"}
    assert sum(v for _, v in counters) == ROWS // 2
    workers = {labels["quiver.worker"] for labels, _ in _points(last, "quiver.rows_in")}
    assert len(workers) == 2
    udf_seconds = _points(last, "quiver.udf.time")
    assert udf_seconds and all(0 < v < 60 for _, v in udf_seconds)  # seconds, not ns


def test_each_map_is_a_span_with_its_rows(receiver: _Receiver) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    with quiver.Session(workers=2, otlp_endpoint=receiver.url + "/v1/metrics") as s:
        _map(s)
        _map(s)
        keyed = pa.table({"k": ["a", "b", "a"], "x": [1.0, 2.0, 3.0]})
        s.apply(keyed, same_group, group_by="k").read_all()
    runs = ("quiver.map", "quiver.apply")  # beside them: their worker starts (below)
    spans = [span for span in _spans(receiver) if span.name in runs]
    assert [span.name for span in spans] == ["quiver.map", "quiver.map", "quiver.apply"]
    first, second, grouped = spans
    assert first.start_time_unix_nano < first.end_time_unix_nano <= second.start_time_unix_nano
    rows = {a.key: a.value for a in grouped.attributes}["quiver.input.rows"]
    assert rows.int_value == 3
    for span in (first, second):
        attributes = {a.key: a.value for a in span.attributes}
        assert attributes["quiver.input.rows"].int_value == ROWS
        assert attributes["quiver.rows_out"].int_value == ROWS
        assert attributes["quiver.input.batches"].int_value == ROWS // BATCH_ROWS
        udfs = [v.string_value for v in attributes["quiver.udfs"].array_value.values]
        assert udfs == ["count_even"]


def _spans(receiver: _Receiver) -> list[Any]:
    """Every span posted, in the order they were exported."""
    return [
        span
        for request in receiver.traces
        for resource_spans in request.resource_spans  # type: ignore[attr-defined]
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def _attributes(span: Any) -> dict[str, Any]:
    out = {}
    for a in span.attributes:
        kind = a.value.WhichOneof("value")
        out[a.key] = getattr(a.value, kind)
    return out


def _children(spans: list[Any], parent: Any, name: str) -> list[Any]:
    return [s for s in spans if s.name == name and s.parent_span_id == parent.span_id]


def test_each_worker_start_is_a_span_under_the_map_that_started_it(receiver: _Receiver) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    with quiver.Session(workers=2, otlp_endpoint=receiver.url) as s:
        _map(s)
        _map(s)  # on the same, warm workers: no start
    spans = _spans(receiver)
    first, second = [span for span in spans if span.name == "quiver.map"]
    starts = _children(spans, first, "quiver.worker.start")
    assert len(starts) == 2
    assert len([span for span in spans if span.name == "quiver.worker.start"]) == 2
    assert _children(spans, second, "quiver.worker.start") == []
    labels = sorted((_attributes(span) for span in starts), key=lambda a: a["quiver.worker.index"])
    assert [a["quiver.worker.index"] for a in labels] == [0, 1]
    assert {(a["quiver.runtime"], a["quiver.udf_group"]) for a in labels} == {("py", "count_even")}
    assert all(a["quiver.pid"].isdigit() and a["quiver.worker"] for a in labels)
    for start in starts:
        assert start.trace_id == first.trace_id
        assert first.start_time_unix_nano <= start.start_time_unix_nano
        assert start.start_time_unix_nano < start.end_time_unix_nano <= first.end_time_unix_nano
    assert not [span for span in spans if span.name == "quiver.batch"]  # off by default


@pytest.mark.parametrize(("rate", "sampled"), [(1, 10), (0.3, 3)])
def test_trace_batches_makes_that_share_of_batches_spans(
    receiver: _Receiver, rate: float, sampled: int
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    with quiver.Session(workers=2, otlp_endpoint=receiver.url, trace_batches=rate) as s:
        out = s.map(_table(), [quiver.call(count_even, "x")], batch_rows=BATCH_ROWS)
        out.read_all()
        assert len(s.metrics(out)["spans"]["batches"]) == sampled
    spans = _spans(receiver)
    [run] = [span for span in spans if span.name == "quiver.map"]
    batches = _children(spans, run, "quiver.batch")
    assert len(batches) == sampled  # floor(10 batches x rate), evenly spread
    indexes = sorted(_attributes(b)["quiver.batch.index"] for b in batches)
    assert len(set(indexes)) == sampled and all(0 <= i < ROWS // BATCH_ROWS for i in indexes)
    for batch in batches:
        labels = _attributes(batch)
        assert labels["quiver.batch.rows_in"] == labels["quiver.batch.rows_out"] == BATCH_ROWS
        assert labels["quiver.batch.bytes_in"] >= BATCH_ROWS * 8
        assert labels["quiver.udf_group"] == "count_even"
        span_seconds = (batch.end_time_unix_nano - batch.start_time_unix_nano) * 1e-9
        assert 0 < labels["quiver.batch.worker_time"] <= span_seconds + 1e-6


@pytest.mark.parametrize("rate", [-0.5, 1.5])
def test_a_trace_batches_out_of_0_to_1_is_refused(rate: float) -> None:
    with pytest.raises(InvalidInput, match="trace_batches must be from 0 to 1"):
        quiver.Session(workers=1, trace_batches=rate)


def test_a_collector_that_does_not_answer_is_said_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from quiver.export import MetricsExportWarning

    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")  # many exports, all failing
    nobody = f"http://127.0.0.1:{_free_port()}"
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        with quiver.Session(workers=1, otlp_endpoint=nobody) as s:
            for _ in range(3):
                assert _map(s).num_rows == ROWS
    export_warnings = [w for w in said if issubclass(w.category, MetricsExportWarning)]
    assert len(export_warnings) == 1, [str(w.message) for w in said]
    message = str(export_warnings[0].message)
    # Metrics and spans go out on their own threads: whichever fails first is the one said.
    assert f"{nobody}/v1/metrics" in message or f"{nobody}/v1/traces" in message, message
    assert "maps go on" in message
    sdk_lines = [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")]
    assert sdk_lines == []  # the SDK's own lines about the failure are not said besides


def test_an_endpoint_that_is_not_a_url_is_refused() -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    with pytest.raises(InvalidInput, match="OTLP/HTTP URL"):
        quiver.Session(workers=1, otlp_endpoint="localhost:4318")


def test_a_missing_opentelemetry_sdk_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.metrics", None)
    with pytest.raises(ImportError, match="pip install opentelemetry-sdk"):
        quiver.Session(workers=1, otlp_endpoint="http://127.0.0.1:4318")


def test_scrapes_during_maps_only_grow_and_end_at_the_rows() -> None:
    pytest.importorskip("prometheus_client")
    rows = 200_000
    table = pa.table({"x": pa.array(range(rows), pa.int64())})
    seen: list[float] = []
    stop = threading.Event()
    with quiver.Session(workers=2, prometheus_port=0) as s:
        url = s.prometheus_url or ""

        def scrape() -> None:
            while not stop.is_set():
                seen.append(_total(_scrape(url), "quiver_rows_in_total"))

        scraper = threading.Thread(target=scrape)
        scraper.start()
        try:
            for _ in range(3):
                s.map(table, [quiver.call(count_even, "x")], batch_rows=1000).read_all()
        finally:
            stop.set()
            scraper.join()
        seen.append(_total(_scrape(url), "quiver_rows_in_total"))
    assert len(seen) > 3
    assert all(a <= b for a, b in zip(seen, seen[1:], strict=False)), "a counter went down"
    assert seen[-1] == 3 * rows
