#pragma once

// The trace of a `quiver run --otlp-endpoint URL` (docs/metrics.md, "Spans"):
// a span for the run, and under it one per worker started and one per batch
// sampled (--trace-batches), posted once as OTLP/HTTP JSON to /v1/traces.

#include <cstdint>
#include <string>

#include "quiver/exec/run_metrics.h"
#include "quiver/exec/udf_operator.h"

namespace quiver::cli {

/// An OTLP attribute of a string value, as JSON: {"key":...,"value":{"stringValue":...}}.
std::string OtlpStringAttribute(const std::string& key, const std::string& value);

/// Returns the URL spans go to: `endpoint`'s base with /v1/traces.
std::string OtlpTracesUrl(const std::string& endpoint);

/// The ids of a run's spans: a trace id (16 bytes) and one span id (8 bytes)
/// per span, taken in turn; random, never all zero.
class SpanIds {
 public:
  SpanIds();
  /// The trace id as 32 lowercase hex digits (OTLP/JSON's form).
  const std::string& trace_id() const { return trace_id_; }
  /// A new span id as 16 lowercase hex digits.
  std::string NextSpanId();

 private:
  std::string trace_id_;
  uint64_t state_;
};

/// Formats the run's trace as an OTLP ExportTraceServiceRequest in JSON: the
/// run's span `quiver.run` from `start_unix_nanos` to `end_unix_nanos`, and its
/// children `quiver.worker.start` and `quiver.batch`.
std::string OtlpTraceJson(const exec::UdfRunMetrics& metrics, int64_t start_unix_nanos,
                          int64_t end_unix_nanos, SpanIds& ids);

}  // namespace quiver::cli
