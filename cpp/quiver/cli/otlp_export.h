#pragma once

// `quiver run --otlp-endpoint URL`: the run's metrics (docs/metrics.md) and its
// spans, posted once when the run ends to an OpenTelemetry collector as OTLP/HTTP JSON.

#include <chrono>
#include <cstdint>
#include <string>

#include <arrow/status.h>

#include "quiver/cli/metrics_report.h"
#include "quiver/exec/udf_operator.h"

namespace quiver::cli {

/// How long the post waits for the collector.
inline constexpr std::chrono::milliseconds kOtlpTimeout{3000};

/// Checks that `endpoint` is an http:// or https:// URL (a usage error when not).
arrow::Status CheckOtlpEndpoint(const std::string& endpoint);

/// Checks --trace-batches: a share from 0 to 1, given with --otlp-endpoint
/// (a usage error when not).
arrow::Status CheckTraceBatches(double rate, const std::string& endpoint);

/// Returns the URL metrics go to: `endpoint`'s base with /v1/metrics.
std::string OtlpMetricsUrl(const std::string& endpoint);

/// Formats the run's figures as an OTLP ExportMetricsServiceRequest in JSON:
/// cumulative sums from `start_unix_nanos` to `end_unix_nanos`, one point per
/// worker, named as quiver.Session exports them (docs/metrics.md, "Export").
std::string OtlpMetricsJson(const exec::UdfRunMetrics& metrics, const EngineTimes& engine,
                            int64_t start_unix_nanos, int64_t end_unix_nanos);

/// Posts `json` to `url`; an error says why (no answer, an HTTP status).
arrow::Status PostOtlpJson(const std::string& url, const std::string& json);

/// Posts the run's figures to the collector at `endpoint`, then its spans
/// (otlp_spans.h); a failure is said on stderr, once, and does not fail the
/// run (its output is written already).
void ExportRunMetrics(const std::string& endpoint, const exec::UdfRunMetrics& metrics,
                      const EngineTimes& engine, std::chrono::system_clock::time_point started);

}  // namespace quiver::cli
