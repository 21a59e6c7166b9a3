#pragma once

// UdfOperator: the piece an engine embeds to run UDFs out of process.
//
// Batches come in as an arrow::RecordBatchReader and go out as one: each output
// batch is the input's pass-through columns (the same buffers, by reference)
// followed by one column per UDF, computed by worker processes.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "quiver/exec/run_metrics.h"
#include "quiver/exec/udf_call.h"

namespace quiver::worker {
class WorkerDispatcher;
}

namespace quiver::exec {

/// How input batches reach the argument builder.
enum class InputMode {
  /// Batches stay columnar: plain columns are sent from their own buffers (path 1).
  kColumnar,
  /// Every batch is turned into engine rows and appended back to Arrow builders
  /// before anything is sent, as an engine without columnar input does (path 2;
  /// Spark's ColumnarToRow + ArrowWriter plan). For comparisons and for engines
  /// whose data are rows.
  kRows,
};

/// The default of UdfOperatorOptions::max_batch_bytes (docs/decisions.md says
/// how it was chosen).
inline constexpr int64_t kDefaultMaxBatchBytes = int64_t{4} << 20;

/// How an operator runs.
struct UdfOperatorOptions {
  std::vector<UdfCall> udfs;
  /// Input columns to keep beside the results, in this order; nullopt keeps all.
  std::optional<std::vector<std::string>> pass_through;
  /// What the caller calls `pass_through` in its own interface, quoted in the
  /// errors about it (the quiver command says "--select").
  std::string pass_through_label = "pass_through";
  /// Worker executions per run (each on its own worker process).
  int workers = 1;
  /// Batches sent to one worker and not yet answered; bounds memory.
  int max_batches_in_flight_per_worker = 4;
  /// Most bytes of UDF arguments per batch sent to a worker (batch_bytes.h says
  /// how they are counted): a larger input batch is cut into pieces of whole
  /// rows, each within the cap; a single row over it goes alone. With the
  /// input's own batch size (rows) this bounds the memory of engine and workers.
  int64_t max_batch_bytes = kDefaultMaxBatchBytes;
  /// Bytes in flight to one worker: its batches' input plus the largest result
  /// seen so far for each; a batch always goes when none is in flight, so one
  /// result larger than this still passes, alone (udf_run_window.h).
  int64_t max_bytes_in_flight_per_worker = int64_t{256} << 20;
  InputMode input_mode = InputMode::kColumnar;
};

/// Figures about one run, for progress and summaries.
struct UdfRunMetrics {
  int64_t batches = 0;
  int64_t rows = 0;
  int64_t bytes_in = 0;  // Arrow buffer bytes of the input batches read
  /// Time the workers spent inside UDF calls, summed over workers.
  std::chrono::nanoseconds worker_udf_time{0};
  /// Time the run spent reading its input (docs/metrics.md: read_nanos).
  std::chrono::nanoseconds read_time{0};
  /// Per group of UDFs run in the same workers, each worker's figures
  /// (complete once the run ended or stopped).
  std::vector<UdfGroupMetrics> groups;
};

/// A run of an operator: read it like any RecordBatchReader.
class UdfRun : public arrow::RecordBatchReader {
 public:
  /// Returns the figures so far (complete once the reader returned its end).
  virtual UdfRunMetrics metrics() const = 0;
};

/// The worker pools of an operator by runtime name (UdfCall::runtime): one
/// dispatcher per kind of worker (a Python one, a compiled one, ...).
using RuntimeDispatchers = std::map<std::string, worker::WorkerDispatcher*>;

/// Runs UDFs over batches in worker processes taken from dispatchers.
///
/// The operator holds no per-run state: every Execute makes a new UdfRun, so
/// one operator can run many inputs, one after the other or at once. UDFs of
/// several runtimes run on their own workers, each runtime's batches pipelined
/// on its own; their results come back beside each other, in input order and
/// in the order of `UdfOperatorOptions::udfs`.
class UdfOperator {
 public:
  /// Checks `options` (CheckUdfNames; the checks against the input's schema run
  /// in Execute, see udf_checks.h) and makes an operator whose workers come from `dispatcher`,
  /// which must outlive it and its runs. Every UDF runs there, whatever its runtime.
  static arrow::Result<std::unique_ptr<UdfOperator>> Make(worker::WorkerDispatcher* dispatcher,
                                                          UdfOperatorOptions options);

  /// Same, with one dispatcher per runtime: each UDF runs on the dispatcher of
  /// its UdfCall::runtime, which must be a key of `dispatchers`. Errors name
  /// the runtime and its worker command beside the UDFs.
  static arrow::Result<std::unique_ptr<UdfOperator>> Make(RuntimeDispatchers dispatchers,
                                                          UdfOperatorOptions options);

  /// Starts a run over `input`: acquires workers, sends them the UDFs, and
  /// returns once every worker has accepted them (so the output schema is known).
  arrow::Result<std::shared_ptr<UdfRun>> Execute(std::shared_ptr<arrow::RecordBatchReader> input);

  ~UdfOperator();

 private:
  UdfOperator(RuntimeDispatchers dispatchers, bool name_runtimes, UdfOperatorOptions options);

  RuntimeDispatchers dispatchers_;
  bool name_runtimes_;
  UdfOperatorOptions options_;
};

}  // namespace quiver::exec
