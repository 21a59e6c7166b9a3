#include "quiver/exec/run_metrics.h"

#include <algorithm>
#include <limits>

#include <arrow/result.h>

namespace quiver::exec {
namespace {

constexpr uint64_t kMaxFigure = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// Adds without wrapping: a sum past int64 stays at its maximum.
int64_t SaturatingAdd(int64_t a, int64_t b) {
  return a > std::numeric_limits<int64_t>::max() - b ? std::numeric_limits<int64_t>::max() : a + b;
}

arrow::Result<int64_t> Figure(uint64_t value, const char* name) {
  if (value > kMaxFigure) {
    return arrow::Status::Invalid("the worker reported ", name, " = ", value,
                                  ", beyond what any execution can reach");
  }
  return static_cast<int64_t>(value);
}

}  // namespace

void WorkerMetrics::Add(const WorkerMetrics& other) {
  batches += other.batches;
  rows_in += other.rows_in;
  rows_out += other.rows_out;
  bytes_in += other.bytes_in;
  bytes_out += other.bytes_out;
  wait_nanos += other.wait_nanos;
  cpu_nanos = SaturatingAdd(cpu_nanos, other.cpu_nanos);
  udf_nanos = SaturatingAdd(udf_nanos, other.udf_nanos);
  codec_nanos = SaturatingAdd(codec_nanos, other.codec_nanos);
  peak_rss_bytes = std::max(peak_rss_bytes, other.peak_rss_bytes);
  for (const auto& [name, value] : other.counters) {
    counters[name] = SaturatingAdd(counters[name], value);
  }
}

bool BatchSampled(uint64_t sequence, double rate) {
  if (!(rate > 0)) return false;
  if (rate >= 1) return true;
  const auto before = static_cast<uint64_t>(static_cast<double>(sequence) * rate);
  const auto after = static_cast<uint64_t>(static_cast<double>(sequence + 1) * rate);
  return after > before;
}

WorkerMetrics UdfGroupMetrics::Total() const {
  WorkerMetrics total;
  for (const auto& worker : workers) total.Add(worker);
  return total;
}

bool IsMetricName(const std::string& name) {
  if (name.empty()) return false;
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!letter(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return letter(c) || (c >= '0' && c <= '9'); });
}

arrow::Status TakeReportedMetrics(const v1::Metrics& reported, WorkerMetrics* into) {
  ARROW_ASSIGN_OR_RAISE(into->udf_nanos, Figure(reported.udf_nanos(), "udf_nanos"));
  ARROW_ASSIGN_OR_RAISE(into->codec_nanos, Figure(reported.codec_nanos(), "codec_nanos"));
  ARROW_ASSIGN_OR_RAISE(into->peak_rss_bytes, Figure(reported.peak_rss_bytes(), "peak_rss_bytes"));
  if (static_cast<size_t>(reported.counters_size()) > kMaxCounters) {
    return arrow::Status::Invalid("the worker reported ", reported.counters_size(),
                                  " counters; at most ", kMaxCounters,
                                  " names are allowed: the UDF must use fewer (docs/metrics.md)");
  }
  for (const auto& [name, value] : reported.counters()) {
    if (!IsMetricName(name)) {
      return arrow::Status::Invalid("the worker reported a counter named '", name.substr(0, 80),
                                    "', which is not a metric name ([a-zA-Z_][a-zA-Z0-9_]*); the "
                                    "worker or its UDF must use valid names (docs/metrics.md)");
    }
    ARROW_ASSIGN_OR_RAISE(into->counters[name], Figure(value, "a counter"));
  }
  return arrow::Status::OK();
}

}  // namespace quiver::exec
