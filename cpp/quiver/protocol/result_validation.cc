#include "quiver/protocol/result_validation.h"

#include <string>

#include <arrow/array/array_base.h>
#include <arrow/type.h>

namespace quiver::protocol {
namespace {

arrow::Status ColumnProblem(const arrow::Field& field, int index, const std::string& problem) {
  return arrow::Status::Invalid("column '", field.name(), "' (index ", index, ", ",
                                field.type()->ToString(), "): ", problem);
}

}  // namespace

arrow::Status ValidateResultBatch(const arrow::RecordBatch& batch) {
  const arrow::Schema& schema = *batch.schema();
  for (int i = 0; i < batch.num_columns(); ++i) {
    const arrow::Field& field = *schema.field(i);
    const arrow::Array& column = *batch.column(i);
    if (column.length() != batch.num_rows()) {
      return ColumnProblem(field, i,
                           "holds " + std::to_string(column.length()) + " values in a batch of " +
                               std::to_string(batch.num_rows()) + " rows");
    }
    if (!column.type()->Equals(*field.type())) {
      return ColumnProblem(field, i, "holds values of type " + column.type()->ToString());
    }
    // ValidateFull runs the cheap structural checks first, so its own reads of
    // offsets and values never go past a buffer.
    arrow::Status status = column.ValidateFull();
    if (!status.ok()) return ColumnProblem(field, i, status.message());
  }
  return arrow::Status::OK();
}

}  // namespace quiver::protocol
