#pragma once

// The engine behind quiver.Session, in plain C++ (no Python): a pool of
// workers that outlives many runs, and runs read on a helper thread so that a
// caller can stop waiting (Ctrl-C) without waiting for the batch in flight.

#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>

#include "quiver/exec/udf_operator.h"

namespace quiver::worker {
class WorkerDispatcher;
}

namespace quiver::python {

/// How a session starts and talks to its workers.
struct EngineOptions {
  /// The worker command, e.g. {python, "-m", "quiver.worker"}.
  std::vector<std::string> command;
  /// A registered transport name ("uds", "grpc+unix", ...).
  std::string transport = "uds";
  std::chrono::milliseconds batch_timeout{60000};
  std::chrono::milliseconds start_timeout{30000};
  /// Extra environment of the workers.
  std::map<std::string, std::string> environment;
  /// Idle workers kept warm between runs.
  int max_idle_workers = 4;
};

/// One map call being read. Each ReadNextAsync runs one UdfRun::ReadNext on a
/// detached thread that shares ownership of the run (and of the dispatcher),
/// so that Cancel returns at once: the run ends (Cancel to the workers, the
/// workers back to the pool) when the batch in flight is done.
class RunHandle {
 public:
  struct Core;
  explicit RunHandle(std::shared_ptr<Core> core);
  ~RunHandle();

  /// Returns the output schema: the pass-through columns, then one per UDF.
  std::shared_ptr<arrow::Schema> schema() const;

  /// Starts reading the next batch; the future holds null at the end. Only one
  /// read may be in flight; a read after the end returns null, after Cancel Cancelled.
  std::future<arrow::Result<std::shared_ptr<arrow::RecordBatch>>> ReadNextAsync();

  /// Ends the run: now when no read is in flight, else when that read returns.
  void Cancel();

  /// Returns the run's figures so far.
  exec::UdfRunMetrics metrics() const;

 private:
  std::shared_ptr<Core> core_;
};

/// A warm pool of workers and the runs over it.
class Engine {
 public:
  /// Makes the dispatcher; starts no worker.
  static arrow::Result<std::unique_ptr<Engine>> Make(EngineOptions options);

  /// Checks the UDFs against `input`'s schema (no worker is started when they
  /// are wrong), then starts a run over `input` cut into batches of at most
  /// `batch_rows` rows (zero-copy slices).
  arrow::Result<std::unique_ptr<RunHandle>> Map(std::shared_ptr<arrow::RecordBatchReader> input,
                                                exec::UdfOperatorOptions options,
                                                int64_t batch_rows);

  /// Returns how many worker processes were started so far.
  int64_t workers_started() const;

  /// Stops the idle workers; runs still open keep theirs until they end.
  void Close();

  /// Returns whether Close was called.
  bool closed() const { return dispatcher_ == nullptr; }

 private:
  explicit Engine(std::shared_ptr<worker::WorkerDispatcher> dispatcher);

  std::shared_ptr<worker::WorkerDispatcher> dispatcher_;
  int64_t workers_started_at_close_ = 0;
};

/// Returns a reader that hands out `input`'s batches, each cut into slices of
/// at most `batch_rows` rows (no copy).
std::shared_ptr<arrow::RecordBatchReader> SliceBatches(
    std::shared_ptr<arrow::RecordBatchReader> input, int64_t batch_rows);

}  // namespace quiver::python
