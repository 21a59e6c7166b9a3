#pragma once

// Table functions (UDTFs): zero or more output rows per input row. The worker
// answers each batch with its rows, each tagged with the index of its input
// row in the batch; the engine repeats the pass-through columns of that row
// beside them, in input order (docs/protocol.md, section 9).

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include "quiver/exec/argument_plan.h"
#include "quiver/exec/grouped/kinds.h"
#include "quiver/exec/udf_call.h"

namespace quiver::exec::grouped {

/// Checks the row-index column of a UDTF's answer to a batch of `input_rows`
/// rows: int32, no nulls, every index in [0, input_rows), never decreasing.
/// Errors name the UDTF and the batch.
arrow::Status CheckRowIndices(const std::string& udtf, const arrow::Array& indices,
                              int64_t input_rows, const std::string& batch);

/// One table-function run over one input.
class TableFunctionRun {
 public:
  /// Starts the workers. `pass_through` lists the input columns repeated
  /// beside each output row (nullopt: all); `pass_through_label` names it in
  /// errors (e.g. "--select").
  static arrow::Result<std::unique_ptr<TableFunctionRun>> Start(
      worker::WorkerDispatcher* dispatcher, UdfCall udtf,
      std::optional<std::vector<std::string>> pass_through, const std::string& pass_through_label,
      KindOptions options, std::shared_ptr<arrow::RecordBatchReader> input);
  ~TableFunctionRun();

  /// Pass-through columns, then the UDTF's columns.
  std::shared_ptr<arrow::Schema> schema() const { return output_schema_; }

  /// Streams the input through the workers and hands `sink` the output batches in order.
  arrow::Status Run(const BatchSink& sink);

  const KindMetrics& metrics() const { return metrics_; }

 private:
  explicit TableFunctionRun(ArgumentPlan plan);
  arrow::Status Emit(const arrow::RecordBatch& input, const arrow::RecordBatch& result,
                     int64_t batch_number, const BatchSink& sink);

  ArgumentPlan plan_;
  UdfCall udtf_;
  KindOptions options_;
  std::shared_ptr<arrow::RecordBatchReader> input_;
  std::vector<int> pass_through_;
  std::unique_ptr<WorkerPipeline> pipeline_;
  std::shared_ptr<arrow::Schema> output_schema_;
  KindMetrics metrics_;
};

}  // namespace quiver::exec::grouped
