#pragma once

// The engine's check of every batch a worker returns (docs/protocol.md,
// section 3): a worker is another program, possibly in another language, and
// nothing downstream of the transport (compute kernels, the Parquet and CSV
// writers) may read a batch whose offsets, sizes or UTF-8 it has not checked.

#include <arrow/record_batch.h>
#include <arrow/status.h>

namespace quiver::protocol {

/// Checks `batch` in full before anything reads its values: every column's
/// length and type against the schema, buffer sizes, offsets, dictionary
/// indices, the UTF-8 of string columns and nested children
/// (arrow::Array::ValidateFull). The error names the column and the problem.
arrow::Status ValidateResultBatch(const arrow::RecordBatch& batch);

}  // namespace quiver::protocol
