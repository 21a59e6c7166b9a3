#pragma once

// Overlaps reading the input's first batch with the workers' start: a run
// starts its workers (and waits for their InitResponse) before it reads any
// input, so the first read used to wait for the slowest worker.

#include <memory>

#include <arrow/record_batch.h>

namespace quiver::cli {

/// Returns a reader of `input`'s batches whose first batch is already being
/// read on another thread. Errors of that read come from the first ReadNext.
std::shared_ptr<arrow::RecordBatchReader> ReadFirstBatchAhead(
    std::shared_ptr<arrow::RecordBatchReader> input);

}  // namespace quiver::cli
