#pragma once

// Opens the input of `quiver run` as a stream of record batches.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <arrow/record_batch.h>
#include <arrow/result.h>

#include "quiver/cli/file_format.h"

namespace quiver::cli {

/// An opened input: its batches and what is known about it up front.
struct InputFile {
  /// Batches of at most the requested number of rows. Errors name the file.
  std::shared_ptr<arrow::RecordBatchReader> reader;
  /// Rows in the file, when the format records them (Parquet, Arrow IPC file).
  std::optional<int64_t> total_rows;
  /// The format found: kArrowFile and kArrowStream are told apart by the magic.
  FileFormat format = FileFormat::kParquet;
};

/// Opens `path` in `format` and streams it in batches of at most `batch_rows`
/// rows: Parquet is decoded that many rows at a time, CSV is read in blocks
/// sized for about that many rows, and any larger batch is sliced (no copy).
/// A missing or unreadable file is an error that says which file and why.
arrow::Result<InputFile> OpenInputFile(const std::string& path, FileFormat format,
                                       int64_t batch_rows);

}  // namespace quiver::cli
