#pragma once

// Reading ahead: the next batches of a reader are decoded on a thread of their
// own while the caller works (sends batches, waits for workers).

#include <memory>

#include <arrow/record_batch.h>

namespace quiver::input {

/// Returns a reader of the batches of `input`, which a thread reads up to
/// `batches` ahead of the caller (so memory holds at most that many more
/// batches). Errors come out in order, after the batches before them.
/// Destroying the reader stops the thread once its current read returns.
std::shared_ptr<arrow::RecordBatchReader> ReadAhead(std::shared_ptr<arrow::RecordBatchReader> input,
                                                    int batches);

}  // namespace quiver::input
