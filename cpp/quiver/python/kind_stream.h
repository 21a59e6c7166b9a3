#pragma once

// KindStream: a grouped or table kind's run (exec::grouped), read as a stream.
// Those runs push their output into a sink; here the run pushes on a thread of
// its own into a short queue that the reader takes from, so that the Python
// caller reads batch by batch, as from a map, and can stop at any time.

#include <cstddef>
#include <functional>
#include <future>
#include <memory>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include "quiver/exec/grouped/kinds.h"
#include "quiver/python/engine.h"

namespace quiver::worker {
class WorkerDispatcher;
}

namespace quiver::python {

/// Reads a kind's run: its batches in the order the run made them, then its
/// end or its failure. Cancel (or dropping the stream) makes the run's next
/// push fail, so the run ends and its workers go back to the dispatcher.
class KindStream : public ResultStream {
 public:
  struct Core;
  /// Runs a kind: `run(sink)` pushes the output batches; `final_schema()` is
  /// called once the run returned (the schema of an output with no batch).
  /// Both are called on the stream's thread; it destroys them (and so the run
  /// and its workers) before the reader sees the end.
  struct Body {
    std::function<arrow::Status(const exec::grouped::BatchSink&)> run;
    std::function<std::shared_ptr<arrow::Schema>()> final_schema;
    std::function<exec::grouped::KindMetrics()> metrics;
  };

  /// Starts `body` on a thread that shares ownership of `dispatcher`.
  /// `schema` is the output schema when known before the run (else null);
  /// at most `max_queued` batches wait to be read.
  static std::unique_ptr<KindStream> Start(std::shared_ptr<worker::WorkerDispatcher> dispatcher,
                                           std::shared_ptr<arrow::Schema> schema, Body body,
                                           size_t max_queued);
  ~KindStream() override;

  std::shared_ptr<arrow::Schema> schema() const override;
  std::future<arrow::Result<std::shared_ptr<arrow::RecordBatch>>> ReadNextAsync() override;
  void Cancel() override;
  exec::UdfRunMetrics metrics() const override;

 private:
  explicit KindStream(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
};

}  // namespace quiver::python
