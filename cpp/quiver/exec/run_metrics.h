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

/// A worker started for an execution, as a span of the run's trace
/// (docs/metrics.md, "Spans"): from the engine asking for it until it answered
/// Init. A worker reused from the pool (quiver.Session) has none.
struct WorkerStartSpan {
  std::string worker;   // "worker 2 (pid 123)"
  std::string runtime;  // the UDFs' runtime ("py", a --runtime name); "" for Python
  int index = 0;        // its place among the execution's workers, 0..workers-1
  int64_t pid = 0;      // 0 for a remote worker
  int64_t start_unix_nanos = 0;
  int64_t end_unix_nanos = 0;
};

/// One sampled batch (WorkerSpec::trace_batches), as a span: from its sending
/// until its answer reached the engine.
struct BatchSpan {
  uint64_t batch = 0;  // its sequence number in the execution
  int worker_index = 0;
  std::string worker;
  int64_t rows_in = 0;
  int64_t rows_out = 0;
  int64_t bytes_in = 0;
  int64_t bytes_out = 0;
  int64_t start_unix_nanos = 0;
  int64_t end_unix_nanos = 0;
  /// Time the worker held it as its oldest unanswered batch: from its sending,
  /// or the answer to the batch before it, until its own answer (UDF, codec and
  /// wire; the protocol reports UDF time per execution, not per batch).
  int64_t worker_nanos = 0;
};

/// Most batch spans one execution keeps; batches past it are not sampled.
inline constexpr size_t kMaxBatchSpans = 10000;

/// Returns whether batch `sequence` (0, 1, ...) is sampled at `rate` (0 to 1):
/// evenly spread, floor(N * rate) of the first N batches, none at 0, all at 1.
bool BatchSampled(uint64_t sequence, double rate);

/// The UDFs that run together in the same workers, and those workers.
struct UdfGroupMetrics {
  std::vector<std::string> udfs;
  std::vector<WorkerMetrics> workers;
  /// The spans of its workers' starts and of its sampled batches.
  std::vector<WorkerStartSpan> worker_starts;
  std::vector<BatchSpan> batch_spans;

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
