#pragma once

// SessionPool: the pipelining of the grouped and table kinds. Batches go to
// the workers in turn; answers come back in the order the batches were sent,
// with any number of rows (the kinds check their own shapes).

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "quiver/v1/quiver.pb.h"

namespace quiver::worker {
class Worker;
class WorkerDispatcher;
class WorkerSession;
}  // namespace quiver::worker

namespace quiver::exec::grouped {

/// One answered batch.
struct Answer {
  /// The caller's tag given to Submit (e.g. a batch number).
  int64_t tag = 0;
  /// Which worker answered: 0..workers-1 (the "partition" of partial aggregates).
  int worker = 0;
  std::shared_ptr<arrow::RecordBatch> result;
};

/// Workers running one execution of a grouped or table kind.
class SessionPool {
 public:
  /// Acquires `workers` workers from `dispatcher`, sends each `init` and waits
  /// until all accepted it; checks they agree on the result schema. `label`
  /// (e.g. "grouped map 'f'") starts every error.
  static arrow::Result<std::unique_ptr<SessionPool>> Start(worker::WorkerDispatcher* dispatcher,
                                                           const v1::Init& init, int workers,
                                                           int window_per_worker,
                                                           std::string label);

  ~SessionPool();

  /// Returns the result schema every worker answered Init with.
  const std::shared_ptr<arrow::Schema>& result_schema() const { return result_schema_; }

  /// Returns whether Submit would exceed the window: take an answer first.
  bool Full() const;
  /// Returns whether every submitted batch was answered.
  bool Empty() const { return pending_.empty(); }

  /// Sends `batch` to the next worker. `expected_rows` is the row count its
  /// answer must have, or -1 for any.
  arrow::Status Submit(const arrow::RecordBatch& batch, int64_t expected_rows, int64_t tag);

  /// Waits for the oldest unanswered batch's answer (schema, rows and full
  /// validation checked by the worker session).
  arrow::Result<Answer> Next();

  /// Ends the execution on every worker (all answers must have been taken) and
  /// returns the nanoseconds the workers spent in UDF calls.
  arrow::Result<int64_t> Finish();

  /// Returns how many workers run the execution.
  int workers() const { return static_cast<int>(sessions_.size()); }

 private:
  struct Pending {
    uint64_t sequence;
    int session;
    int64_t rows;
    int64_t tag;
  };
  SessionPool(worker::WorkerDispatcher* dispatcher, int window, std::string label);
  arrow::Status Fail(const arrow::Status& status, const std::string& where);
  void Stop();

  worker::WorkerDispatcher* dispatcher_;
  int window_;
  std::string label_;
  std::vector<std::unique_ptr<worker::Worker>> workers_;
  std::vector<std::unique_ptr<worker::WorkerSession>> sessions_;
  std::shared_ptr<arrow::Schema> result_schema_;
  std::deque<Pending> pending_;
  uint64_t next_sequence_ = 0;
  int next_session_ = 0;
  arrow::Status failure_;
};

}  // namespace quiver::exec::grouped
