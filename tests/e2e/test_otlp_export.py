"""quiver run --otlp-endpoint: the run's metrics and spans posted as OTLP/HTTP JSON to a
receiver on loopback, which reads them with opentelemetry-proto's classes (json_format), as a
collector would."""

from __future__ import annotations

import base64
import http.server
import json
import os
import socket
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from quiver_e2e import ROOT, assert_ok, spec, udf_file, write_table

ROWS = 10_000
BATCH_ROWS = 1_000

pytest.importorskip("opentelemetry.proto", reason="needs opentelemetry-proto (requirements-test)")


class Receiver(http.server.ThreadingHTTPServer):
    """Keeps every ExportMetricsServiceRequest (``requests``) and ExportTraceServiceRequest
    (``traces``) posted to it as OTLP/HTTP JSON."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.requests: list[object] = []
        self.traces: list[object] = []
        self.content_types: list[str] = []
        self.refused: set[str] = set()  # paths answered 404, as a collector without them

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ReceiverHandler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        from google.protobuf import json_format
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as service

        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path in self.server.refused:
            pass
        elif self.path == "/v1/traces":
            self.server.traces.append(trace_request(body))
        else:
            request = service.ExportMetricsServiceRequest()
            json_format.Parse(body.decode(), request)  # refuses a field OTLP does not have
            self.server.requests.append(request)
            self.server.content_types.append(self.headers["Content-Type"])
        known = self.path in ("/v1/metrics", "/v1/traces") and self.path not in self.server.refused
        self.send_response(200 if known else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def trace_request(body: bytes):
    """An ExportTraceServiceRequest from OTLP/JSON, whose ids are hex (protobuf's JSON has
    them base64): each id is checked to be hex of its size, then parsed."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as service

    document = json.loads(body)
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key, size in (("traceId", 16), ("spanId", 8), ("parentSpanId", 8)):
                    if key in span:
                        raw = bytes.fromhex(span[key])
                        assert len(raw) == size and any(raw), span
                        span[key] = base64.b64encode(raw).decode()
    request = service.ExportTraceServiceRequest()
    json_format.Parse(json.dumps(document), request)
    return request


@pytest.fixture
def receiver():
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def run(quiver, tmp_path, *flags: object):
    table = pa.table({"x": pa.array(range(ROWS), type=pa.int64())})
    source = write_table(table, tmp_path / "in.parquet", batch_rows=BATCH_ROWS)
    result = quiver(
        "run", source, "--udf", spec("y", "metered", "skip_multiples_of_three", "x"),
        "--batch-rows", BATCH_ROWS, "--workers", 2, "-o", "out.parquet", *flags,
    )  # fmt: skip
    if result.returncode == 2 and "built without libcurl" in result.stderr:
        pytest.skip("this quiver was built without libcurl (libcurl4-openssl-dev)")
    return result


def points(request, name: str) -> list[tuple[dict[str, str], float]]:
    found = []
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    data = metric.sum if metric.HasField("sum") else metric.gauge
                    for point in data.data_points:
                        value = point.as_int if point.HasField("as_int") else point.as_double
                        labels = {a.key: a.value.string_value for a in point.attributes}
                        found.append((labels, value))
    return found


def test_the_run_posts_its_metrics(quiver, tmp_path, receiver):
    result = run(quiver, tmp_path, "--otlp-endpoint", receiver.url)
    assert_ok(result)
    assert "could not export" not in result.stderr
    [request] = receiver.requests
    assert receiver.content_types == ["application/json"]
    resource = request.resource_metrics[0].resource
    assert {a.key: a.value.string_value for a in resource.attributes} == {"service.name": "quiver"}
    out = pq.read_table(tmp_path / "out.parquet")
    assert sum(v for _, v in points(request, "quiver.input.rows")) == ROWS
    assert sum(v for _, v in points(request, "quiver.rows_in")) == ROWS
    assert sum(v for _, v in points(request, "quiver.rows_out")) == out.num_rows
    assert sum(v for _, v in points(request, "quiver.batches")) == ROWS // BATCH_ROWS
    counters = {}
    for labels, value in points(request, "quiver.udf.counter"):
        counters[labels["quiver.counter"]] = counters.get(labels["quiver.counter"], 0) + value
    assert counters == {"rows_skipped": len(range(0, ROWS, 3)), "batches_seen": ROWS // BATCH_ROWS}
    workers = points(request, "quiver.rows_in")
    assert sorted(labels["quiver.worker"] for labels, _ in workers) == ["1", "2"]
    assert all(labels["quiver.udf_group"] == "y" for labels, _ in workers)
    assert all(labels["quiver.pid"].isdigit() for labels, _ in workers)
    assert all(0 < v < 60 for _, v in points(request, "quiver.udf.time"))  # seconds


def test_a_collector_that_does_not_answer_is_said_once_and_the_run_succeeds(quiver, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run(quiver, tmp_path, "--otlp-endpoint", f"http://127.0.0.1:{port}")
    assert_ok(result)
    assert result.stderr.count("could not export") == 1, result.stderr
    assert f"http://127.0.0.1:{port}/v1/metrics" in result.stderr
    assert pq.read_table(tmp_path / "out.parquet").num_rows == ROWS


@pytest.mark.parametrize("endpoint", ["localhost:4318", "ftp://host", "http://"])
def test_an_endpoint_that_is_not_a_url_is_a_usage_error(quiver, tmp_path, endpoint):
    result = run(quiver, tmp_path, "--otlp-endpoint", endpoint)
    assert result.returncode == 2, result.stderr
    assert "OTLP/HTTP URL" in result.stderr
    assert not (tmp_path / "out.parquet").exists()


def test_a_udaf_run_posts_its_metrics(quiver, tmp_path, receiver):
    keys = 7
    table = pa.table({"k": [i % keys for i in range(ROWS)], "x": [float(i) for i in range(ROWS)]})
    source = write_table(table, tmp_path / "in.parquet", batch_rows=BATCH_ROWS)
    result = quiver(
        "run", source, "--group-by", "k", "--agg", f"n={udf_file('kinds')}:count_arrow(x)",
        "--workers", 2, "-o", "out.parquet", "--otlp-endpoint", receiver.url,
    )  # fmt: skip
    if result.returncode == 2 and "built without libcurl" in result.stderr:
        pytest.skip("this quiver was built without libcurl (libcurl4-openssl-dev)")
    assert_ok(result)
    [request] = receiver.requests
    assert sum(v for _, v in points(request, "quiver.input.rows")) == ROWS
    assert sum(v for _, v in points(request, "quiver.rows_in")) == ROWS
    assert sum(v for _, v in points(request, "quiver.rows_out")) == keys
    workers = points(request, "quiver.rows_in")
    assert sorted(labels["quiver.worker"] for labels, _ in workers) == ["1", "2"]


def spans_of(receiver) -> dict[str, list]:
    """The spans posted, by name; each with its attributes as a dict."""
    [request] = receiver.traces
    by_name: dict[str, list] = {}
    for resource in request.resource_spans:
        for scope in resource.scope_spans:
            for span in scope.spans:
                by_name.setdefault(span.name, []).append(span)
    return by_name


def attributes(span) -> dict[str, object]:
    out = {}
    for a in span.attributes:
        kind = a.value.WhichOneof("value")
        value = getattr(a.value, kind)
        out[a.key] = [v.string_value for v in value.values] if kind == "array_value" else value
    return out


def test_the_run_is_a_span_with_a_child_per_worker_start(quiver, tmp_path, receiver):
    assert_ok(run(quiver, tmp_path, "--otlp-endpoint", receiver.url))
    spans = spans_of(receiver)
    assert set(spans) == {"quiver.run", "quiver.worker.start"}  # no batch spans by default
    [root] = spans["quiver.run"]
    assert attributes(root) == {
        "quiver.udfs": ["y"],
        "quiver.input.rows": ROWS,
        "quiver.input.batches": ROWS // BATCH_ROWS,
        "quiver.rows_out": ROWS,
        "quiver.udf.time": pytest.approx(attributes(root)["quiver.udf.time"]),
    }
    assert not root.parent_span_id and root.start_time_unix_nano < root.end_time_unix_nano
    starts = spans["quiver.worker.start"]
    assert len(starts) == 2
    for start in starts:
        assert start.trace_id == root.trace_id and start.parent_span_id == root.span_id
        assert root.start_time_unix_nano <= start.start_time_unix_nano
        assert start.start_time_unix_nano < start.end_time_unix_nano <= root.end_time_unix_nano
    labels = sorted((attributes(s) for s in starts), key=lambda a: a["quiver.worker.index"])
    assert [a["quiver.worker.index"] for a in labels] == [0, 1]
    assert [a["quiver.worker"] for a in labels] == ["1", "2"]
    assert all(a["quiver.runtime"] == "py" and a["quiver.udf_group"] == "y" for a in labels)
    assert all(str(a["quiver.pid"]).isdigit() for a in labels)
    assert len({s.span_id for s in [root, *starts]}) == 3


@pytest.mark.parametrize(("rate", "sampled"), [(1, 10), (0.5, 5), (0.25, 2)])
def test_trace_batches_posts_that_share_of_the_batches(quiver, tmp_path, receiver, rate, sampled):
    assert_ok(run(quiver, tmp_path, "--otlp-endpoint", receiver.url, "--trace-batches", rate))
    spans = spans_of(receiver)
    [root] = spans["quiver.run"]
    batches = spans["quiver.batch"]
    assert len(batches) == sampled  # floor(batches x rate), evenly spread
    seen = sorted(attributes(b)["quiver.batch.index"] for b in batches)
    assert seen == sorted(set(seen)) and all(0 <= i < ROWS // BATCH_ROWS for i in seen)
    for batch in batches:
        labels = attributes(batch)
        assert batch.parent_span_id == root.span_id and batch.trace_id == root.trace_id
        assert batch.start_time_unix_nano < batch.end_time_unix_nano
        assert labels["quiver.batch.rows_in"] == BATCH_ROWS
        assert labels["quiver.batch.rows_out"] == BATCH_ROWS
        assert labels["quiver.batch.bytes_in"] >= BATCH_ROWS * 8  # int64 values, a bitmap maybe
        assert labels["quiver.batch.bytes_out"] > 0
        assert labels["quiver.worker"] in ("1", "2") and labels["quiver.udf_group"] == "y"
        span_seconds = (batch.end_time_unix_nano - batch.start_time_unix_nano) * 1e-9
        assert 0 < labels["quiver.batch.worker_time"] <= span_seconds + 1e-6
    if rate == 1:
        assert seen == list(range(ROWS // BATCH_ROWS))


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (("--trace-batches", "0.5"), "--trace-batches needs --otlp-endpoint"),
        (("--trace-batches", "2", "--otlp-endpoint", "http://127.0.0.1:9"), "from 0 (none) to 1"),
        (("--trace-batches", "-0.1", "--otlp-endpoint", "http://127.0.0.1:9"), "from 0"),
    ],
)
def test_a_bad_trace_batches_is_a_usage_error(quiver, tmp_path, flags, said):
    result = run(quiver, tmp_path, *flags)
    assert result.returncode == 2, result.stderr
    assert said in result.stderr
    assert not (tmp_path / "out.parquet").exists()


def test_a_collector_that_refuses_spans_is_said_once_and_keeps_the_metrics(
    quiver, tmp_path, receiver
):
    receiver.refused.add("/v1/traces")
    result = run(quiver, tmp_path, "--otlp-endpoint", receiver.url)
    assert_ok(result)
    assert len(receiver.requests) == 1  # the metrics were taken
    assert result.stderr.count("could not export") == 1, result.stderr
    assert f"the run's spans to {receiver.url}/v1/traces" in result.stderr
    assert "HTTP 404" in result.stderr


def test_each_runtime_names_its_worker_starts(quiver, tmp_path, receiver):
    worker = ROOT / "build" / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker"
    if not os.access(worker, os.X_OK):
        pytest.skip(f"no C++ example worker at {worker}: ninja -C build quiver_example_udf_worker")
    table = pa.table({"x": pa.array(range(ROWS), type=pa.int64())})
    source = write_table(table, tmp_path / "in.parquet", batch_rows=BATCH_ROWS)
    result = quiver(
        "run", source, "--runtime", f"cc={worker}", "--udf", "z=cc:add_one(x)",
        "--udf", spec("y", "metered", "skip_multiples_of_three", "x"),
        "--batch-rows", BATCH_ROWS, "--workers", 2, "-o", "out.parquet",
        "--otlp-endpoint", receiver.url, "--trace-batches", 1,
    )  # fmt: skip
    assert_ok(result)
    spans = spans_of(receiver)
    [root] = spans["quiver.run"]
    starts = [attributes(s) for s in spans["quiver.worker.start"]]
    by_runtime = sorted((a["quiver.runtime"], a["quiver.udf_group"]) for a in starts)
    assert by_runtime == [("cc", "z"), ("cc", "z"), ("py", "y"), ("py", "y")]
    groups = sorted(attributes(b)["quiver.udf_group"] for b in spans["quiver.batch"])
    assert groups == ["y"] * (ROWS // BATCH_ROWS) + ["z"] * (ROWS // BATCH_ROWS)
    assert all(s.parent_span_id == root.span_id for s in spans["quiver.batch"])
