#pragma once

// The metrics of a finished `quiver run` (docs/metrics.md): the table the
// summary shows and the JSON `--metrics FILE` writes.

#include <chrono>
#include <string>

#include <arrow/status.h>

#include "quiver/exec/udf_operator.h"

namespace quiver::cli {

/// What the engine spent beside the workers' figures.
struct EngineTimes {
  std::chrono::nanoseconds elapsed{0};
  std::chrono::nanoseconds read{0};
  std::chrono::nanoseconds write{0};
};

/// Formats the table of the summary: one row per group of UDFs that run in the
/// same workers, and with `per_worker` one row per worker under it; then the
/// UDFs' own counters. Several lines, each ending in a newline.
std::string FormatMetricsTable(const exec::UdfRunMetrics& metrics, bool per_worker);

/// Formats every metric of the run as one JSON object (docs/metrics.md shows it).
std::string MetricsJson(const exec::UdfRunMetrics& metrics, const EngineTimes& engine);

/// Checks, before a run starts, that `path` can be written: its directory
/// exists and is writable, and it is not a directory nor a read-only file.
arrow::Status CheckMetricsPath(const std::string& path);

/// Writes `json` to `path` (replacing it).
arrow::Status WriteMetricsFile(const std::string& path, const std::string& json);

}  // namespace quiver::cli
