#pragma once

// The figures of a run per worker and per group of UDFs that run together
// (docs/metrics.md defines each). The engine measures rows, batches, bytes and
// its own waiting; the worker reports its UDF and codec time, peak memory and
// the UDFs' own counters in the protocol's Metrics, checked here before use.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <arrow/status.h>

#include "quiver/v1/quiver.pb.h"

namespace quiver::exec {

/// Most counter names one worker may report for one execution.
inline constexpr size_t kMaxCounters = 256;

/// One worker's share of one execution.
struct WorkerMetrics {
  /// How the worker describes itself (pid, transport), for per-worker tables.
  std::string worker;
  int64_t batches = 0;
  int64_t rows_in = 0;
  int64_t rows_out = 0;
  int64_t bytes_in = 0;   // Arrow buffer bytes of the batches sent
  int64_t bytes_out = 0;  // Arrow buffer bytes of the results received
  /// Engine time blocked waiting for this worker's answers.
  int64_t wait_nanos = 0;
  /// CPU time (user and system) of the worker process during the execution,
  /// read by the engine from the process's CPU clock; 0 when unknown.
  int64_t cpu_nanos = 0;
  // Reported by the worker (0 when it does not measure them).
  int64_t udf_nanos = 0;
  int64_t codec_nanos = 0;
  int64_t peak_rss_bytes = 0;
  std::map<std::string, int64_t> counters;

  /// Adds `other`'s figures (peak memory: the larger one).
  void Add(const WorkerMetrics& other);
};

/// The UDFs that run together in the same workers, and those workers.
struct UdfGroupMetrics {
  std::vector<std::string> udfs;
  std::vector<WorkerMetrics> workers;

  /// Returns the figures of all the group's workers together.
  WorkerMetrics Total() const;
};

/// Returns whether `name` is a valid metric name: [a-zA-Z_][a-zA-Z0-9_]*.
bool IsMetricName(const std::string& name);

/// Takes the worker-reported figures of `reported` into `into`, refusing what
/// no honest worker sends: a counter name that is not a metric name, more than
/// kMaxCounters names, a figure beyond int64.
arrow::Status TakeReportedMetrics(const v1::Metrics& reported, WorkerMetrics* into);

}  // namespace quiver::exec
