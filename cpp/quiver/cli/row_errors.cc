#include "quiver/cli/row_errors.h"

#include <arrow/array.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>

#include "quiver/cli/progress.h"

namespace quiver::cli {

std::vector<FailedRows> ErrorColumns(const arrow::Schema& schema,
                                     const std::vector<std::string>& udf_names) {
  std::vector<FailedRows> columns;
  for (int i = 0; i < schema.num_fields(); ++i) {
    for (const auto& udf : udf_names) {
      if (schema.field(i)->name() == udf + "__error") columns.push_back({udf, i, 0});
    }
  }
  return columns;
}

void CountFailedRows(const arrow::RecordBatch& batch, std::vector<FailedRows>* counts) {
  for (auto& failed : *counts) {
    const auto& column = *batch.column(failed.column);
    failed.rows += column.length() - column.null_count();
  }
}

std::string FormatFailedRows(const std::vector<FailedRows>& counts) {
  std::string out;
  for (const auto& failed : counts) {
    out += "  failed   " + FormatCount(failed.rows) + (failed.rows == 1 ? " row" : " rows") +
           " of '" + failed.udf + "': null, their errors in " + failed.udf + "__error\n";
  }
  return out;
}

}  // namespace quiver::cli
