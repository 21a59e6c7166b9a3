#pragma once

// Grouped map (applyInPandas / applyInArrow style): a function gets all rows
// of one group and returns a table of the schema it declared.

#include <memory>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include "quiver/exec/grouped/kinds.h"
#include "quiver/exec/udf_call.h"

namespace quiver::exec::grouped {

/// One grouped-map run over one input.
class GroupedMapRun {
 public:
  /// Starts the workers: they load `function` and declare its result schema.
  /// The function gets every input column (keys included).
  static arrow::Result<std::unique_ptr<GroupedMapRun>> Start(
      worker::WorkerDispatcher* dispatcher, UdfCall function, KindOptions options,
      std::shared_ptr<arrow::RecordBatchReader> input);
  ~GroupedMapRun();

  /// The output schema: the function's declared result schema.
  std::shared_ptr<arrow::Schema> schema() const;

  /// Reads the input whole, groups it and hands the results to `sink`, group
  /// by group in order of each group's first row.
  arrow::Status Run(const BatchSink& sink);

  const KindMetrics& metrics() const { return metrics_; }

 private:
  GroupedMapRun() = default;

  UdfCall function_;
  KindOptions options_;
  std::shared_ptr<arrow::RecordBatchReader> input_;
  std::vector<int> keys_;
  std::unique_ptr<WorkerPipeline> pipeline_;
  KindMetrics metrics_;
};

}  // namespace quiver::exec::grouped
