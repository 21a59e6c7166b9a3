#pragma once

// The batches the kit sends.

#include <cstdint>
#include <memory>

#include <arrow/record_batch.h>
#include <arrow/result.h>

namespace quiver::conformance {

/// One string column "text": "text FIRST", "text FIRST+1", ... (`rows` rows).
std::shared_ptr<arrow::RecordBatch> Strings(int64_t rows, int64_t first = 0);

/// Columns "i" (int64) and "f" (float64) holding 0, 1, 2, ... with every fifth value null.
std::shared_ptr<arrow::RecordBatch> Numbers(int64_t rows);

/// One column per type family a worker receives (docs/protocol.md section 3),
/// each with a null in its second row.
arrow::Result<std::shared_ptr<arrow::RecordBatch>> TypeFamilies(int64_t rows);

/// One string column of about `bytes` bytes (1 KiB values).
std::shared_ptr<arrow::RecordBatch> LargeStrings(int64_t bytes);

}  // namespace quiver::conformance
