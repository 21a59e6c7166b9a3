#pragma once

// Decoding a CSV file on several threads, in order. Arrow's StreamingReader
// parses and converts one block at a time on one thread (it only reads blocks
// ahead, up to 32 of them, on its I/O thread), so it does not scale with cores.
// Here the file after its header is cut into blocks of about `block_bytes` at
// line ends (quiver reads CSV without newlines inside values, as Arrow's
// default does, so a line end always ends a row); a block is claimed in order
// and parsed and converted whole by the thread that claimed it, with the
// column types the first block gave (as the streaming reader freezes them).
//
// Memory bound (ordered_decoder.h): at most threads + 1 blocks are read and not
// yet handed out, each as its bytes plus its batch; the caller holds one more.
// Flat in the file's size, linear in the threads.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/csv/options.h>
#include <arrow/io/interfaces.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>

namespace quiver::input {

/// What the parallel CSV reader needs to know of a file a streaming reader opened.
struct CsvLayout {
  /// Every column of the file, with the types the first block gave them.
  std::shared_ptr<arrow::Schema> file_schema;
  /// The columns read, in the order the streaming reader returns them.
  std::shared_ptr<arrow::Schema> read_schema;
  /// Bytes of a block (more when a line is longer).
  int64_t block_bytes = int64_t{1} << 20;
};

/// Returns a reader of the rows of the CSV file `file` after its header line,
/// parsed with `parse_options` and converted with `convert_options` (whose
/// include_columns say which columns) to the types of `layout.file_schema`, on
/// `threads` threads. Batches and errors come out in the file's order; an error
/// names its line in the file (or the lines of its block) and ends the stream.
arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ReadCsvInParallel(
    std::shared_ptr<arrow::io::RandomAccessFile> file, const CsvLayout& layout,
    const arrow::csv::ParseOptions& parse_options, arrow::csv::ConvertOptions convert_options,
    int threads);

}  // namespace quiver::input
