#include "quiver/cli/otlp_spans.h"

#include <cstdio>
#include <map>
#include <random>
#include <regex>
#include <utility>
#include <vector>

#include "quiver/io/json_text.h"

namespace quiver::cli {
namespace {

std::string Hex(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(value));
  return text;
}

// splitmix64: a fresh, well-mixed id from a counter seeded once from the OS.
uint64_t Mix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string IntAttribute(const std::string& key, int64_t value) {
  return "{\"key\":" + io::JsonQuoted(key) + ",\"value\":{\"intValue\":\"" + std::to_string(value) +
         "\"}}";
}

std::string DoubleAttribute(const std::string& key, double value) {
  char text[48];
  std::snprintf(text, sizeof(text), "%.9f", value);
  return "{\"key\":" + io::JsonQuoted(key) + ",\"value\":{\"doubleValue\":" + text + "}}";
}

std::string StringsAttribute(const std::string& key, const std::vector<std::string>& values) {
  std::string list;
  for (const auto& value : values) {
    list +=
        (list.empty() ? "" : ",") + std::string("{\"stringValue\":") + io::JsonQuoted(value) + "}";
  }
  return "{\"key\":" + io::JsonQuoted(key) + ",\"value\":{\"arrayValue\":{\"values\":[" + list +
         "]}}}";
}

std::string Joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ",") + name;
  return out;
}

// A worker's labels, as the metrics name them: "worker 2 (pid 123)" is worker
// "2", pid "123"; its group's UDFs and its place among the execution's workers.
std::string WorkerAttributes(const std::vector<std::string>& udfs, const std::string& worker,
                             int index) {
  static const std::regex name(R"(worker (\S+) \(pid (\d+)\))");
  std::smatch match;
  const bool named = std::regex_match(worker, match, name);
  return OtlpStringAttribute("quiver.udf_group", Joined(udfs)) + "," +
         OtlpStringAttribute("quiver.worker", named ? match[1].str() : worker) + "," +
         OtlpStringAttribute("quiver.pid", named ? match[2].str() : "") + "," +
         IntAttribute("quiver.worker.index", index);
}

std::string Span(const std::string& trace_id, const std::string& span_id,
                 const std::string& parent_id, const char* name, int64_t start, int64_t end,
                 const std::string& attributes) {
  return "{\"traceId\":\"" + trace_id + "\",\"spanId\":\"" + span_id + "\"," +
         (parent_id.empty() ? "" : "\"parentSpanId\":\"" + parent_id + "\",") + "\"name\":\"" +
         name + "\",\"kind\":1,\"startTimeUnixNano\":\"" + std::to_string(start) +
         "\",\"endTimeUnixNano\":\"" + std::to_string(end) + "\",\"attributes\":[" + attributes +
         "]}";
}

}  // namespace

std::string OtlpStringAttribute(const std::string& key, const std::string& value) {
  return "{\"key\":" + io::JsonQuoted(key) +
         ",\"value\":{\"stringValue\":" + io::JsonQuoted(value) + "}}";
}

std::string OtlpTracesUrl(const std::string& endpoint) {
  std::string base = endpoint;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string metrics = "/v1/metrics";
  if (base.size() >= metrics.size() &&
      base.compare(base.size() - metrics.size(), metrics.size(), metrics) == 0) {
    base.resize(base.size() - metrics.size());
  }
  return base + "/v1/traces";
}

SpanIds::SpanIds() {
  std::random_device device;
  state_ = (static_cast<uint64_t>(device()) << 32) ^ device();
  trace_id_ = Hex(Mix(state_) | 1) + Hex(Mix(state_));
}

std::string SpanIds::NextSpanId() { return Hex(Mix(state_) | 1); }

std::string OtlpTraceJson(const exec::UdfRunMetrics& metrics, int64_t start_unix_nanos,
                          int64_t end_unix_nanos, SpanIds& ids) {
  // A worker's attributes, formatted once: its batches share them.
  std::map<std::pair<std::string, int>, std::string> labelled;
  auto labels = [&](const exec::UdfGroupMetrics& group, const std::string& worker, int index) {
    auto& text = labelled[{Joined(group.udfs) + "\n" + worker, index}];
    if (text.empty()) text = WorkerAttributes(group.udfs, worker, index);
    return text;
  };
  const std::string run_id = ids.NextSpanId();
  std::vector<std::string> udfs;
  int64_t rows_out = 0;
  for (const auto& group : metrics.groups) {
    udfs.insert(udfs.end(), group.udfs.begin(), group.udfs.end());
    rows_out += group.Total().rows_out;
  }
  std::string spans =
      Span(ids.trace_id(), run_id, "", "quiver.run", start_unix_nanos, end_unix_nanos,
           StringsAttribute("quiver.udfs", udfs) + "," +
               IntAttribute("quiver.input.rows", metrics.rows) + "," +
               IntAttribute("quiver.input.batches", metrics.batches) + "," +
               IntAttribute("quiver.rows_out", rows_out) + "," +
               DoubleAttribute("quiver.udf.time",
                               static_cast<double>(metrics.worker_udf_time.count()) * 1e-9));
  for (const auto& group : metrics.groups) {
    for (const auto& start : group.worker_starts) {
      spans += "," + Span(ids.trace_id(), ids.NextSpanId(), run_id, "quiver.worker.start",
                          start.start_unix_nanos, start.end_unix_nanos,
                          labels(group, start.worker, start.index) + "," +
                              OtlpStringAttribute("quiver.runtime",
                                                  start.runtime.empty() ? "py" : start.runtime));
    }
    for (const auto& batch : group.batch_spans) {
      spans +=
          "," + Span(ids.trace_id(), ids.NextSpanId(), run_id, "quiver.batch",
                     batch.start_unix_nanos, batch.end_unix_nanos,
                     labels(group, batch.worker, batch.worker_index) + "," +
                         IntAttribute("quiver.batch.index", static_cast<int64_t>(batch.batch)) +
                         "," + IntAttribute("quiver.batch.rows_in", batch.rows_in) + "," +
                         IntAttribute("quiver.batch.rows_out", batch.rows_out) + "," +
                         IntAttribute("quiver.batch.bytes_in", batch.bytes_in) + "," +
                         IntAttribute("quiver.batch.bytes_out", batch.bytes_out) + "," +
                         DoubleAttribute("quiver.batch.worker_time",
                                         static_cast<double>(batch.worker_nanos) * 1e-9));
    }
  }
  return "{\"resourceSpans\":[{\"resource\":{\"attributes\":[" +
         OtlpStringAttribute("service.name", "quiver") +
         "]},\"scopeSpans\":[{\"scope\":{\"name\":\"quiver\"},\"spans\":[" + spans + "]}]}]}";
}

}  // namespace quiver::cli
