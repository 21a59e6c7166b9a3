#pragma once

// `quiver run`: read a file, run UDFs over it in worker processes, write the
// input's kept columns beside the results.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

#include "quiver/cli/kind_options.h"

namespace quiver::worker {
struct WorkerSpec;
}

namespace quiver::cli {

/// The options of `quiver run`, as given on the command line.
struct RunOptions {
  std::string input;
  std::string output;
  std::optional<std::string> input_format;
  std::optional<std::string> output_format;
  /// --udf specs, in order (grammar in udf_spec.h).
  std::vector<std::string> udf_specs;
  /// --runtime declarations, NAME=COMMAND [ARG ...] (grammar in runtime_spec.h).
  std::vector<std::string> runtime_specs;
  /// --udf-arg NAME.KEY=VALUE texts: class UDF constructor arguments (udf_args.h).
  std::vector<std::string> udf_args;
  /// --udf-option NAME.KEY=VALUE texts: per-call options of Python UDFs (udf_options.h).
  std::vector<std::string> udf_options;
  /// --requirements FILE for the Python UDFs' environment; empty for none (python_envs.h).
  std::string requirements_file;
  /// --select text; nullopt keeps every input column.
  std::optional<std::string> select;
  int64_t batch_rows = 65536;
  /// --batch-bytes: most bytes of UDF arguments per batch (UdfOperatorOptions::max_batch_bytes).
  int64_t batch_bytes = int64_t{4} << 20;
  int workers = 1;
  double batch_timeout_seconds = 60;
  int max_in_flight = 4;
  /// "columnar" (path 1) or "rows" (every batch through engine rows first: path 2).
  std::string input_mode = "columnar";
  /// How workers are reached: "auto" (shm for a worker that speaks it, else
  /// uds), "uds", "shm", "grpc" (grpc+unix) or "grpc+tcp".
  std::string transport = "auto";
  std::string python;
  bool quiet = false;
  /// -v: the summary's metrics table has a row per worker too.
  bool verbose = false;
  /// --metrics FILE: every metric of the run as JSON (docs/metrics.md); empty: none.
  std::string metrics_file;
  /// --otlp-endpoint URL: the run's metrics posted to an OpenTelemetry collector
  /// (OTLP/HTTP JSON) when it ends; empty: none.
  std::string otlp_endpoint;
  /// --trace-batches RATE: the share of batches (0 to 1) posted as spans with
  /// --otlp-endpoint, beside the run's and its worker starts'; 0: none.
  double trace_batches = 0;
  /// --progress: "auto" (a line on a terminal), "json" (JSON lines on stderr),
  /// "live" (a line per worker too, on a terminal) or "off".
  std::string progress = "auto";
  /// --log-dir DIR: the workers' output as JSON lines, a file per worker; empty: none.
  std::string log_dir;
  /// --traceback-locals: a UDF error shows its failing frame's local variables.
  bool traceback_locals = false;
  /// Allows the output to be the input file (replaced once the run succeeded).
  bool force = false;
  /// Start Python workers by fork/exec, not through the fork server (--no-daemon).
  bool no_daemon = false;
  /// --sandbox and --sandbox-read paths (sandbox_options.h).
  bool sandbox = false;
  std::vector<std::string> sandbox_read;
  /// --worker-memory and --max-in-flight-bytes (resource_limit_options.h).
  std::string worker_memory;
  std::string max_in_flight_bytes = "256M";
  /// --group-by/--apply/--agg/--udtf: the grouped and table kinds (kind_options.h).
  KindOptions kinds;
};

/// Runs `quiver run`. Checks everything it can (specs, formats, columns, the
/// interpreter) before starting workers; writes the output through a temporary
/// file so that a failed or interrupted run leaves none. Prints progress (on a
/// terminal) and the summary (unless quiet) to stderr. Returns Cancelled when
/// interrupted by a signal (see InterruptSignal()).
arrow::Status RunCommand(const RunOptions& options);

/// Returns the spec of a worker pool of a run, whatever its UDF kind: `command`,
/// one core per worker (no BLAS thread pools), the transport, batch timeout and
/// worker count of `options`, the fork server (for the Python worker, unless
/// --no-daemon) and the --worker-memory cap.
arrow::Result<worker::WorkerSpec> WorkerPoolSpec(const RunOptions& options,
                                                 std::vector<std::string> command);

}  // namespace quiver::cli
