#pragma once

// Decoding pieces of an input on several threads, handing the batches out in
// the input's order: the engine of the parallel Arrow IPC and CSV readers.
//
// Pieces are claimed one at a time, in order, under the reader's lock (so a
// reader whose pieces are found sequentially, like CSV blocks split at line
// ends, can find the next one there), then decoded outside it, each on the
// thread that claimed it.
//
// Memory bound. At most `window` pieces are claimed and not yet handed to the
// caller: being decoded, or decoded and waiting. A thread waits before it
// claims a piece beyond that. So the reader holds at most `window` pieces (the
// bytes a piece is decoded from plus its batch), and the caller one more.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

namespace quiver::input {

/// Decodes one claimed piece; `thread` is the index (0 to threads - 1) of the
/// thread that runs it, for state kept per thread.
using DecodePiece = std::function<arrow::Result<std::shared_ptr<arrow::RecordBatch>>(int thread)>;

/// Claims the next piece, in order: its decoder, or nullopt when no piece is left.
/// Called under the reader's lock, one call at a time; an error ends the stream
/// after the pieces claimed before it.
using ClaimPiece = std::function<arrow::Result<std::optional<DecodePiece>>()>;

/// How many threads decode, and how far ahead of the caller.
struct OrderedDecodeOptions {
  /// Threads that decode pieces (at least 1).
  int threads = 2;
  /// Pieces claimed and not yet handed out; 0: threads + 1. At least threads.
  int window = 0;
};

/// Returns a reader of the batches of the pieces `claim` hands out, decoded
/// on `options.threads` threads, in claim order (an error comes out in place of
/// its piece and ends the stream). Destroying the reader stops the threads once
/// their current piece is decoded. `schema` is what schema() reports.
std::shared_ptr<arrow::RecordBatchReader> DecodeInOrder(std::shared_ptr<arrow::Schema> schema,
                                                        ClaimPiece claim,
                                                        const OrderedDecodeOptions& options);

}  // namespace quiver::input
