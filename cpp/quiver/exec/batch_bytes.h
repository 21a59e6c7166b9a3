#pragma once

// Byte-sized batches: how many bytes a batch sends to a worker, and where to cut
// a batch so that every piece stays under a cap (UdfOperatorOptions::max_batch_bytes).

#include <cstdint>
#include <memory>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>

namespace quiver::exec {

/// Returns the bytes `batch` sends: the Arrow buffer bytes its columns
/// reference, counting only the rows a sliced column holds (what the Arrow IPC
/// writer puts in a Data body, without padding and message headers). A
/// dictionary counts whole, as it travels whole.
arrow::Result<int64_t> BatchBytes(const arrow::RecordBatch& batch);

/// Returns at least BatchBytes(batch), cheaply: every buffer whole.
int64_t BatchBytesUpperBound(const arrow::RecordBatch& batch);

/// Returns how many rows of `batch`, from row `offset` on, make the largest
/// piece of at most `max_bytes` bytes (BatchBytes). At least 1: a row larger
/// than the cap goes alone.
arrow::Result<int64_t> RowsThatFit(const arrow::RecordBatch& batch, int64_t offset,
                                   int64_t max_bytes);

/// Returns a reader of the batches of `input` cut into pieces of whole rows
/// whose columns `columns` (indices into the input) hold at most `max_bytes`
/// bytes each (RowsThatFit); batches within the cap pass through untouched.
std::shared_ptr<arrow::RecordBatchReader> CapBatchBytes(
    std::shared_ptr<arrow::RecordBatchReader> input, std::vector<int> columns, int64_t max_bytes);

}  // namespace quiver::exec
