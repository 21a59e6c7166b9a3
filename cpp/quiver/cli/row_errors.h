#pragma once

// Rows that failed under a UDF's on_error=null policy, counted for the
// summary of `quiver run` from the UDF's NAME__error output column
// (docs/async-udfs.md; docs/protocol.md, "Rows that fail").

#include <cstdint>
#include <string>
#include <vector>

#include <arrow/type_fwd.h>

namespace quiver::cli {

/// One UDF's error column in the output and the rows it marked failed so far.
struct FailedRows {
  std::string udf;
  int column = -1;  // index of NAME__error in the output schema
  int64_t rows = 0;
};

/// Returns one entry per UDF of `udf_names` whose NAME__error column the
/// output `schema` holds, in output order.
std::vector<FailedRows> ErrorColumns(const arrow::Schema& schema,
                                     const std::vector<std::string>& udf_names);

/// Adds the rows of `batch` whose error column is not null.
void CountFailedRows(const arrow::RecordBatch& batch, std::vector<FailedRows>* counts);

/// Formats one summary line per UDF with an error column:
/// "  failed   3 rows of 'geo': null, their errors in geo__error".
std::string FormatFailedRows(const std::vector<FailedRows>& counts);

}  // namespace quiver::cli
