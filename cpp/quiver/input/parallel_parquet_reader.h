#pragma once

// Decoding a Parquet file on several threads, in order: each thread decodes a
// row group of its own, batch by batch, ahead of the caller; the caller gets the
// batches in the file's order, as a single reader would give them.
//
// Memory bound. At most `window` row groups are open at once: decoding, or
// decoded and waiting for the caller. A row group holds at most
// `batches_per_group` decoded batches before its thread waits, and a decoder
// reads each column through a 1 MiB buffer (plus the page it decodes), not the
// column chunk whole. So the reader holds at most
//   threads x columns read x (1 MiB + largest page)
//   + window x batches_per_group x (bytes of a decoded batch, about --batch-bytes)
// whatever the size of the file or of its row groups: flat in the input,
// linear in the threads.

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <arrow/io/interfaces.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>
#include <parquet/metadata.h>
#include <parquet/properties.h>

namespace quiver::input {

/// How many threads decode, and how far ahead of the caller.
struct ParallelParquetOptions {
  /// Threads that decode row groups (at least 1; never more than the row groups).
  int threads = 2;
  /// Decoded batches a row group holds before its thread waits for the caller.
  int batches_per_group = 2;
  /// Row groups open at once (decoding or waiting); 0: threads + 1. At least threads.
  int window = 0;
};

/// Returns a reader of `row_groups` of the Parquet file `file` (whose footer is
/// `metadata`), decoded `properties.batch_size()` rows at a time by
/// `options.threads` threads, each with a decoder of its own. Only the leaf
/// columns `leaves` are decoded (every column when nullopt). Batches and errors
/// come out in the file's order; an error ends the stream. Destroying the reader
/// stops the threads once their current batch is decoded.
arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ReadParquetInParallel(
    std::shared_ptr<arrow::io::RandomAccessFile> file,
    std::shared_ptr<parquet::FileMetaData> metadata,
    const parquet::ArrowReaderProperties& properties, std::vector<int> row_groups,
    std::optional<std::vector<int>> leaves, const ParallelParquetOptions& options);

/// Returns `status` saying it happened in row group `row_group` of the file's
/// `row_groups`: what the errors of both Parquet readers say.
arrow::Status RowGroupError(int row_group, int row_groups, const arrow::Status& status);

/// Bytes a decoder reads of a column chunk at a time, below a page's size: a
/// page (1 MiB as most writers cut them) larger than the buffer is read straight
/// into its own buffer, where one smaller than the buffer is read into the
/// buffer and copied out again.
inline constexpr int64_t kDecoderBufferBytes = int64_t{64} << 10;

/// Parquet reader properties that read pages through a buffer of
/// kDecoderBufferBytes instead of each column chunk whole: a decoder then holds
/// about a page of the file, not a compressed row group, and does not fault
/// in fresh pages for every column chunk it reads.
parquet::ReaderProperties BufferedReaderProperties();

/// The decode threads for a run of `workers` workers on `cores` cores: the cores
/// the workers leave free, at least 1 and at most kMaxDecodeThreads.
int DecodeThreadsFor(unsigned cores, int workers);

/// Most decode threads chosen by DecodeThreadsFor.
inline constexpr int kMaxDecodeThreads = 8;

/// The decode threads of `quiver run`: QUIVER_DECODE_THREADS when set to a
/// positive number (for measuring), else DecodeThreadsFor(this machine's cores).
int DecodeThreadsOfRun(int workers);

}  // namespace quiver::input
