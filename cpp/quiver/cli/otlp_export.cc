#include "quiver/cli/otlp_export.h"

#include <cinttypes>
#include <cstdio>
#include <functional>
#include <regex>
#include <vector>

#ifdef QUIVER_HAVE_CURL
#include <curl/curl.h>
#endif

#include "quiver/cli/otlp_spans.h"
#include "quiver/cli/usage_error.h"
#include "quiver/io/json_text.h"

namespace quiver::cli {
namespace {

// One figure of a worker: its key in --metrics, its OTLP name, unit and scale.
struct WorkerFigure {
  const char* name;
  const char* unit;
  bool seconds;  // nanoseconds exported as seconds (a double)
  bool monotonic;
  std::function<int64_t(const exec::WorkerMetrics&)> of;
};

const std::vector<WorkerFigure>& WorkerFigures() {
  static const std::vector<WorkerFigure> figures = {
      {"quiver.batches", "{batch}", false, true, [](auto& m) { return m.batches; }},
      {"quiver.rows_in", "{row}", false, true, [](auto& m) { return m.rows_in; }},
      {"quiver.rows_out", "{row}", false, true, [](auto& m) { return m.rows_out; }},
      {"quiver.bytes_in", "By", false, true, [](auto& m) { return m.bytes_in; }},
      {"quiver.bytes_out", "By", false, true, [](auto& m) { return m.bytes_out; }},
      {"quiver.udf.time", "s", true, true, [](auto& m) { return m.udf_nanos; }},
      {"quiver.codec.time", "s", true, true, [](auto& m) { return m.codec_nanos; }},
      {"quiver.cpu.time", "s", true, true, [](auto& m) { return m.cpu_nanos; }},
      {"quiver.wait.time", "s", true, true, [](auto& m) { return m.wait_nanos; }},
      {"quiver.peak_rss", "By", false, false, [](auto& m) { return m.peak_rss_bytes; }},
  };
  return figures;
}

std::string Attribute(const std::string& key, const std::string& value) {
  return OtlpStringAttribute(key, value);
}

// A worker's labels: "worker 2 (pid 123)" is worker "2", pid "123".
std::string WorkerAttributes(const std::string& udf_group, const std::string& worker) {
  static const std::regex name(R"(worker (\S+) \(pid (\d+)\))");
  std::smatch match;
  const bool named = std::regex_match(worker, match, name);
  return Attribute("quiver.udf_group", udf_group) + "," +
         Attribute("quiver.worker", named ? match[1].str() : worker) + "," +
         Attribute("quiver.pid", named ? match[2].str() : "");
}

std::string Value(int64_t raw, bool seconds) {
  if (!seconds) return "\"asInt\":\"" + std::to_string(raw) + "\"";
  char text[48];
  std::snprintf(text, sizeof(text), "\"asDouble\":%.9f", static_cast<double>(raw) * 1e-9);
  return text;
}

struct Point {
  std::string attributes;  // the JSON of its attributes, without brackets
  std::string value;       // "asInt":"N" or "asDouble":X
};

std::string Metric(const std::string& name, const std::string& unit, bool monotonic,
                   const std::vector<Point>& points, int64_t start, int64_t end) {
  std::string data;
  for (const auto& point : points) {
    if (!data.empty()) data += ",";
    data += "{\"attributes\":[" + point.attributes + "],\"startTimeUnixNano\":\"" +
            std::to_string(start) + "\",\"timeUnixNano\":\"" + std::to_string(end) + "\"," +
            point.value + "}";
  }
  const std::string body = "{\"dataPoints\":[" + data + "]";
  const std::string kind =
      monotonic ? "\"sum\":" + body + ",\"aggregationTemporality\":2,\"isMonotonic\":true}"
                : "\"gauge\":" + body + "}";
  return "{\"name\":" + io::JsonQuoted(name) + ",\"unit\":" + io::JsonQuoted(unit) + "," + kind +
         "}";
}

std::string GroupName(const exec::UdfGroupMetrics& group) {
  std::string names;
  for (const auto& udf : group.udfs) names += (names.empty() ? "" : ",") + udf;
  return names;
}

}  // namespace

arrow::Status CheckOtlpEndpoint(const std::string& endpoint) {
  static const std::regex url(R"(https?://[^/\s]+(/\S*)?)");
  if (std::regex_match(endpoint, url)) {
#ifdef QUIVER_HAVE_CURL
    return arrow::Status::OK();
#else
    return UsageError(
        "--otlp-endpoint: this quiver was built without libcurl "
        "(libcurl4-openssl-dev); write the metrics with --metrics FILE instead");
#endif
  }
  return UsageError("--otlp-endpoint " + endpoint +
                    ": give the collector's OTLP/HTTP URL, such as http://localhost:4318");
}

arrow::Status CheckTraceBatches(double rate, const std::string& endpoint) {
  if (!(rate >= 0 && rate <= 1)) {
    return UsageError("--trace-batches " + std::to_string(rate) +
                      ": give the share of batches to trace, from 0 (none) to 1 (every one), "
                      "such as 0.01");
  }
  if (rate > 0 && endpoint.empty()) {
    return UsageError(
        "--trace-batches needs --otlp-endpoint URL: the sampled batches' spans go to that "
        "collector");
  }
  return arrow::Status::OK();
}

std::string OtlpMetricsUrl(const std::string& endpoint) {
  std::string base = endpoint;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string suffix = "/v1/metrics";
  if (base.size() >= suffix.size() &&
      base.compare(base.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return base;
  }
  return base + suffix;
}

std::string OtlpMetricsJson(const exec::UdfRunMetrics& metrics, const EngineTimes& engine,
                            int64_t start_unix_nanos, int64_t end_unix_nanos) {
  std::vector<std::string> out;
  auto add = [&](const char* name, const char* unit, int64_t raw, bool seconds) {
    out.push_back(
        Metric(name, unit, true, {{"", Value(raw, seconds)}}, start_unix_nanos, end_unix_nanos));
  };
  add("quiver.input.rows", "{row}", metrics.rows, false);
  add("quiver.input.batches", "{batch}", metrics.batches, false);
  add("quiver.input.bytes", "By", metrics.bytes_in, false);
  add("quiver.read.time", "s", engine.read.count(), true);
  for (const auto& figure : WorkerFigures()) {
    std::vector<Point> points;
    for (const auto& group : metrics.groups) {
      for (const auto& worker : group.workers) {
        points.push_back({WorkerAttributes(GroupName(group), worker.worker),
                          Value(figure.of(worker), figure.seconds)});
      }
    }
    out.push_back(Metric(figure.name, figure.unit, figure.monotonic, points, start_unix_nanos,
                         end_unix_nanos));
  }
  std::vector<Point> counters;
  for (const auto& group : metrics.groups) {
    for (const auto& worker : group.workers) {
      for (const auto& [name, count] : worker.counters) {
        counters.push_back({WorkerAttributes(GroupName(group), worker.worker) + "," +
                                Attribute("quiver.counter", name),
                            Value(count, false)});
      }
    }
  }
  out.push_back(
      Metric("quiver.udf.counter", "1", true, counters, start_unix_nanos, end_unix_nanos));
  std::string joined;
  for (const auto& metric : out) joined += (joined.empty() ? "" : ",") + metric;
  return "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[" +
         Attribute("service.name", "quiver") +
         "]},\"scopeMetrics\":[{\"scope\":{\"name\":\"quiver\"},\"metrics\":[" + joined + "]}]}]}";
}

#ifdef QUIVER_HAVE_CURL
arrow::Status PostOtlpJson(const std::string& url, const std::string& json) {
  // libcurl's global state lives only as long as the one post of a run.
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    return arrow::Status::IOError("libcurl could not start");
  }
  CURL* curl = curl_easy_init();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(json.size()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(kOtlpTimeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  // The collector's answer body is not needed: discard it instead of printing it.
  curl_easy_setopt(
      curl, CURLOPT_WRITEFUNCTION,
      +[](char*, size_t size, size_t count, void*) { return size * count; });
  const CURLcode code = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  curl_global_cleanup();
  if (code != CURLE_OK) return arrow::Status::IOError(curl_easy_strerror(code));
  if (status < 200 || status >= 300) {
    return arrow::Status::IOError("the collector answered HTTP " + std::to_string(status));
  }
  return arrow::Status::OK();
}
#else
arrow::Status PostOtlpJson(const std::string&, const std::string&) {
  return arrow::Status::NotImplemented("this quiver was built without libcurl");
}
#endif

void ExportRunMetrics(const std::string& endpoint, const exec::UdfRunMetrics& metrics,
                      const EngineTimes& engine, std::chrono::system_clock::time_point started) {
  using std::chrono::nanoseconds;
  const auto unix_nanos = [](std::chrono::system_clock::time_point at) {
    return std::chrono::duration_cast<nanoseconds>(at.time_since_epoch()).count();
  };
  const int64_t start = unix_nanos(started);
  const int64_t end = unix_nanos(std::chrono::system_clock::now());
  std::string url = OtlpMetricsUrl(endpoint);
  const char* what = "metrics";
  auto posted = PostOtlpJson(url, OtlpMetricsJson(metrics, engine, start, end));
  // A collector that did not take the metrics is not waited for a second time.
  if (posted.ok()) {
    SpanIds ids;
    url = OtlpTracesUrl(endpoint);
    what = "spans";
    posted = PostOtlpJson(url, OtlpTraceJson(metrics, start, end, ids));
  }
  if (!posted.ok()) {
    std::fprintf(stderr,
                 "quiver: could not export the run's %s to %s (OTLP/HTTP): %s; the run "
                 "succeeded. Check that a collector listens there (--otlp-endpoint), or keep "
                 "the metrics with --metrics FILE\n",
                 what, url.c_str(), posted.message().c_str());
  }
}

}  // namespace quiver::cli
