#pragma once

// The engine behind quiver.Session, in plain C++ (no Python): a pool of
// workers that outlives many runs, and runs read on a helper thread so that a
// caller can stop waiting (Ctrl-C) without waiting for the batch in flight.

#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>

#include "quiver/exec/grouped/kinds.h"
#include "quiver/exec/udf_call.h"
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
  /// Where each worker's output goes as JSON lines (as `quiver run --log-dir`);
  /// empty: kept only as the bounded tail errors quote.
  std::string log_dir;
  /// Share of batches (0 to 1) kept as spans of their run (docs/metrics.md, "Spans").
  double trace_batches = 0;
};

/// The result of one session call (map, apply, aggregate, flat_map), read
/// batch by batch from Python.
class ResultStream {
 public:
  virtual ~ResultStream() = default;

  /// Returns the output schema, or null while it is not known yet (aggregates
  /// know theirs once their first batch, or their end, was read).
  virtual std::shared_ptr<arrow::Schema> schema() const = 0;

  /// Starts reading the next batch; the future holds null at the end. Only one
  /// read may be in flight; a read after the end returns null, after Cancel Cancelled.
  virtual std::future<arrow::Result<std::shared_ptr<arrow::RecordBatch>>> ReadNextAsync() = 0;

  /// Ends the run: now when no read is in flight, else when that read returns.
  virtual void Cancel() = 0;

  /// Returns the run's figures so far.
  virtual exec::UdfRunMetrics metrics() const = 0;
};

/// One map call being read. Each ReadNextAsync runs one UdfRun::ReadNext on a
/// detached thread that shares ownership of the run (and of the dispatcher),
/// so that Cancel returns at once: the run ends (Cancel to the workers, the
/// workers back to the pool) when the batch in flight is done.
class RunHandle : public ResultStream {
 public:
  struct Core;
  explicit RunHandle(std::shared_ptr<Core> core);
  ~RunHandle() override;

  /// Returns the output schema: the pass-through columns, then one per UDF.
  std::shared_ptr<arrow::Schema> schema() const override;

  std::future<arrow::Result<std::shared_ptr<arrow::RecordBatch>>> ReadNextAsync() override;

  void Cancel() override;

  exec::UdfRunMetrics metrics() const override;

 private:
  std::shared_ptr<Core> core_;
};

/// Warm pools of workers, one per runtime, and the runs over them.
///
/// The runtime "" is the one EngineOptions describes; AddRuntime adds others
/// (e.g. a Python environment with other packages). A map whose UDFs name
/// several runtimes runs as one exec::UdfOperator over all their pools, as
/// `quiver run` does: each runtime's workers get the same input batches and
/// the results come back beside each other.
class Engine {
 public:
  /// Makes the dispatcher of the runtime ""; starts no worker.
  static arrow::Result<std::unique_ptr<Engine>> Make(EngineOptions options);

  /// Adds the runtime `name`, whose workers run `command` with `environment`
  /// (the other options are the engine's); starts no worker. A runtime that
  /// exists already is kept.
  arrow::Status AddRuntime(const std::string& name, std::vector<std::string> command,
                           std::map<std::string, std::string> environment);

  /// Returns whether the runtime `name` exists.
  bool HasRuntime(const std::string& name) const;

  /// Checks the UDFs against `input`'s schema (no worker is started when they
  /// are wrong), then starts a run over `input` cut into batches of at most
  /// `batch_rows` rows (zero-copy slices). Each UDF runs on the workers of its
  /// UdfCall::runtime.
  arrow::Result<std::unique_ptr<RunHandle>> Map(std::shared_ptr<arrow::RecordBatchReader> input,
                                                exec::UdfOperatorOptions options,
                                                int64_t batch_rows);

  /// Starts a grouped map (docs/grouped-map.md) of `function` over `input`
  /// grouped by `options.group_by`, through exec::grouped::GroupedMapRun as
  /// `quiver run --apply` does, on the workers of `function.runtime`. The
  /// workers load the function here (errors now); the input is read and
  /// grouped once the result is read.
  arrow::Result<std::unique_ptr<ResultStream>> Apply(
      std::shared_ptr<arrow::RecordBatchReader> input, exec::UdfCall function,
      exec::grouped::KindOptions options);

  /// Starts grouped aggregates (docs/udaf.md) through exec::grouped::GroupedAggRun,
  /// as `quiver run --agg` does; the UDAFs share one runtime. The output schema
  /// is known after the first read.
  arrow::Result<std::unique_ptr<ResultStream>> Aggregate(
      std::shared_ptr<arrow::RecordBatchReader> input, std::vector<exec::UdfCall> udafs,
      exec::grouped::KindOptions options);

  /// Starts a table function (docs/udtf.md) through exec::grouped::TableFunctionRun,
  /// as `quiver run --udtf` does; `select` lists the input columns kept beside
  /// each output row (nullopt: all).
  arrow::Result<std::unique_ptr<ResultStream>> FlatMap(
      std::shared_ptr<arrow::RecordBatchReader> input, exec::UdfCall udtf,
      std::optional<std::vector<std::string>> select, exec::grouped::KindOptions options);

  /// Returns how many worker processes were started so far, in every runtime.
  int64_t workers_started() const;

  /// Stops the idle workers; runs still open keep theirs until they end.
  void Close();

  /// Returns whether Close was called.
  bool closed() const { return runtimes_.empty(); }

 private:
  using Dispatchers = std::map<std::string, std::shared_ptr<worker::WorkerDispatcher>>;
  Engine(EngineOptions options, Dispatchers runtimes);

  /// Fails once Close was called: every run needs the session's workers.
  arrow::Status CheckOpen() const;

  /// Returns the dispatcher of `runtime`, or an error when there is none.
  arrow::Result<std::shared_ptr<worker::WorkerDispatcher>> Dispatcher(
      const std::string& runtime) const;

  EngineOptions options_;  // of the runtime "", the base of the others
  Dispatchers runtimes_;
  int64_t workers_started_at_close_ = 0;
};

/// Returns a reader that hands out `input`'s batches, each cut into slices of
/// at most `batch_rows` rows (no copy).
std::shared_ptr<arrow::RecordBatchReader> SliceBatches(
    std::shared_ptr<arrow::RecordBatchReader> input, int64_t batch_rows);

}  // namespace quiver::python
