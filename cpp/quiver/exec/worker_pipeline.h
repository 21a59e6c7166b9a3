#pragma once

// WorkerPipeline: the one way every kind (scalar, class, table function,
// grouped map, UDAF) runs its workers. It acquires the workers, starts the
// execution on each and waits until all accepted it, sends batches to them in
// turn within the in-flight bounds, hands the answers back in the order the
// batches were sent, and finishes or stops the execution. What differs between
// the kinds (how the input is cut, how results are assembled) stays with them.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "quiver/exec/in_flight_bytes.h"
#include "quiver/exec/run_metrics.h"
#include "quiver/v1/quiver.pb.h"

namespace quiver::worker {
class Worker;
class WorkerDispatcher;
class WorkerExecution;
}  // namespace quiver::worker

namespace quiver::exec {

/// How many workers a pipeline runs and how much it keeps in flight.
struct PipelineOptions {
  /// Workers that run the execution.
  int workers = 1;
  /// Batches sent and not yet answered, per worker.
  int max_batches_in_flight_per_worker = 4;
  /// Arrow buffer bytes in flight per worker (see InFlightBytes); <= 0: no byte bound.
  int64_t max_bytes_in_flight_per_worker = 0;
  /// What the run is (e.g. "running UDFs 'a', 'b'"): starts every error.
  std::string label;
  /// The UDFs' runtime, named in the worker start spans ("" for Python).
  std::string runtime;
};

/// What the caller calls each option of a run in errors (the CLI's flags, the
/// Python keywords); the defaults are exec's own names.
struct OptionNames {
  std::string workers = "workers";
  std::string max_in_flight = "max_batches_in_flight_per_worker";
  std::string batch_rows = "batch_rows";
  std::string max_batch_bytes = "max_batch_bytes";
};

/// Refuses `value` below 1, naming the option: a caller's 0 is a mistake to
/// report, never a value to raise to 1.
arrow::Status CheckAtLeastOne(const std::string& name, int64_t value);

/// Refuses a worker count or a batch window below 1.
arrow::Status CheckPipelineOptions(const PipelineOptions& options, const OptionNames& names = {});

/// One answered batch.
struct Answer {
  /// The caller's tag given to Submit (e.g. a batch number).
  int64_t tag = 0;
  /// Which worker answered: 0..workers-1 (the "partition" of partial aggregates).
  int worker = 0;
  std::shared_ptr<arrow::RecordBatch> result;
};

/// What a push-style run does with each answer, in the order batches were sent.
using AnswerHandler = std::function<arrow::Status(Answer)>;

/// Workers running one execution, fed in turn and answering in order.
class WorkerPipeline {
 public:
  /// Checks `options`, acquires the workers from `dispatcher`, sends each
  /// `init` and waits until all accepted it; checks they agree on the result
  /// schema.
  static arrow::Result<std::unique_ptr<WorkerPipeline>> Start(worker::WorkerDispatcher* dispatcher,
                                                              const v1::Init& init,
                                                              PipelineOptions options);

  ~WorkerPipeline();

  /// Returns the result schema every worker answered Init with.
  const std::shared_ptr<arrow::Schema>& result_schema() const { return result_schema_; }
  /// Returns how many workers run the execution.
  int workers() const { return workers_count_; }
  /// Returns the most batches the pipeline keeps in flight.
  size_t window() const;

  /// Returns whether Submit would go beyond the window of batches or bytes:
  /// take an answer first.
  bool Full() const;
  /// Returns whether every submitted batch was answered.
  bool Empty() const { return pending_.empty(); }

  /// Sends `batch` to the next worker. `expected_rows` is the row count its
  /// answer must have, or -1 for any; `what` (e.g. "batch 3 (rows 0-9)") names
  /// the batch in errors.
  arrow::Status Submit(const arrow::RecordBatch& batch, int64_t expected_rows, int64_t tag,
                       std::string what);

  /// Waits for the oldest unanswered batch's answer (schema, rows and full
  /// validation checked by the worker execution).
  arrow::Result<Answer> Next();

  /// Ends the execution on every worker (all answers must have been taken) and
  /// returns the nanoseconds the workers spent in UDF calls.
  arrow::Result<int64_t> Finish();

  /// Submit for runs that push their output: while the window is full, hands
  /// the oldest answer to `handle` first.
  arrow::Status SubmitInTurn(const arrow::RecordBatch& batch, int64_t expected_rows, int64_t tag,
                             std::string what, const AnswerHandler& handle);

  /// Hands every outstanding answer to `handle`, then finishes (see Finish).
  arrow::Result<int64_t> DrainAndFinish(const AnswerHandler& handle);

  /// Returns each worker's figures so far (docs/metrics.md); the worker-reported
  /// ones are there once Finish returned.
  const std::vector<WorkerMetrics>& worker_metrics() const { return worker_metrics_; }
  /// Returns the spans of the workers started for this execution (not those reused).
  const std::vector<WorkerStartSpan>& worker_starts() const { return worker_starts_; }
  /// Returns the spans of the batches sampled (WorkerSpec::trace_batches) and answered.
  const std::vector<BatchSpan>& batch_spans() const { return batch_spans_; }

  /// Records the first failure (labelled, with `where` it happened), stops
  /// every worker's execution and returns the failure. Later calls return the
  /// first failure.
  arrow::Status Fail(const arrow::Status& status, const std::string& where);

  /// Ends every unfinished execution (Cancel) and gives the workers back.
  void Stop();

 private:
  struct Pending {
    uint64_t sequence = 0;
    int worker = 0;
    int64_t rows = -1;
    int64_t tag = 0;
    std::string what;
    bool sampled = false;  // kept as a BatchSpan once answered
    int64_t rows_sent = 0;
    int64_t bytes = 0;
    std::chrono::system_clock::time_point sent;
  };
  WorkerPipeline(worker::WorkerDispatcher* dispatcher, PipelineOptions options);
  arrow::Status StartWorkers(const v1::Init& init);
  std::string Where(const Pending& pending) const;
  // Records the span of `pending`'s answer `result`, when it is sampled.
  void NoteAnswer(const Pending& pending, const arrow::RecordBatch& result, int64_t result_bytes);

  worker::WorkerDispatcher* dispatcher_;
  const PipelineOptions options_;
  int workers_count_ = 0;
  std::vector<std::unique_ptr<worker::Worker>> workers_;
  std::vector<std::unique_ptr<worker::WorkerExecution>> executions_;
  std::shared_ptr<arrow::Schema> result_schema_;
  std::deque<Pending> pending_;
  InFlightBytes in_flight_bytes_;
  std::vector<WorkerMetrics> worker_metrics_;  // kept after Stop
  std::vector<WorkerStartSpan> worker_starts_;
  std::vector<BatchSpan> batch_spans_;
  // Per worker: when its last answer arrived (a sampled batch's worker time starts there).
  std::vector<std::chrono::system_clock::time_point> last_answers_;
  double trace_batches_ = 0;
  uint64_t next_sequence_ = 0;
  int next_worker_ = 0;
  arrow::Status failure_;
};

}  // namespace quiver::exec
