#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/compute/expression.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "quiver/exec/udf_call.h"

namespace quiver::exec {

/// \brief Turns input batches into the argument batches sent to workers.
///
/// Each distinct argument becomes one column of the argument batch. A plain
/// column reference takes the input column as it is (path 1: the same buffers,
/// sliced or dictionary-encoded as they come); any other expression is
/// evaluated with Arrow compute, still columnar (path 3).
class ArgumentPlan {
 public:
  /// Checks (CheckArgument), resolves and binds the arguments of `udfs` against `input`.
  static arrow::Result<ArgumentPlan> Make(const std::vector<UdfCall>& udfs,
                                          const arrow::Schema& input);

  /// Returns the schema of the argument batches.
  const std::shared_ptr<arrow::Schema>& schema() const { return schema_; }

  /// Returns, per UDF, the argument columns it takes, in argument order.
  const std::vector<std::vector<int>>& offsets() const { return offsets_; }

  /// Builds the argument batch of one input batch.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Build(
      const std::shared_ptr<arrow::RecordBatch>& input) const;

 private:
  struct Column {
    int input_index = -1;                   // >= 0: a plain input column (path 1)
    arrow::compute::Expression expression;  // bound; used when input_index < 0 (path 3)
  };

  // Returns the argument column of `argument`, adding it when new.
  arrow::Result<int> AddColumn(const arrow::compute::Expression& argument,
                               const arrow::Schema& input);

  std::shared_ptr<arrow::Schema> input_schema_;
  std::vector<Column> columns_;
  std::vector<std::shared_ptr<arrow::Field>> fields_;
  std::shared_ptr<arrow::Schema> schema_;
  std::vector<std::vector<int>> offsets_;
};

/// Returns the names of the input columns the arguments of `udfs` read (each
/// once, in order of appearance), or nullopt when an argument refers to a
/// column other than by name (then every column may be needed).
std::optional<std::vector<std::string>> ArgumentColumnNames(const std::vector<UdfCall>& udfs);

}  // namespace quiver::exec
