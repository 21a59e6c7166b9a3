#pragma once

// Opens an input file (Parquet, CSV, Arrow IPC) as a stream of record batches:
// the reader of `quiver run` and of quiver.Session's map over paths.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>

#include "quiver/input/file_format.h"

namespace quiver::input {

/// How to read an input file.
struct InputReadOptions {
  /// Most rows per batch handed out.
  int64_t batch_rows = 65536;
  /// Bytes of decoded data per read that the reader aims at: Parquet decodes
  /// this many bytes' worth of rows at a time (from the file's own statistics),
  /// at least batch_rows rows when they fit and up to kMaxDecodeRows, so that
  /// 1-row batches do not pay a decode each and 1 MB strings do not decode
  /// 65536 at a time.
  int64_t batch_bytes = int64_t{4} << 20;
  /// Only these columns are read (names; names the file lacks are left to the
  /// checks, which see InputFile::file_schema). nullopt reads every column.
  std::optional<std::vector<std::string>> columns;
  /// Decode Parquet column chunks on Arrow's CPU thread pool.
  bool use_threads = false;
  /// Decoded batches read ahead on a thread of the reader while the caller
  /// works (0: read on the caller's thread). Bounds the memory read ahead.
  int read_ahead_batches = 0;
  /// Threads that decode Parquet row groups ahead of the caller, in order
  /// (parallel_parquet_reader.h, which states the memory bound); 1: one reader.
  int decode_threads = 1;
  /// How the caller lets a user name the format, quoted in the advice of errors
  /// ("Name its format with --input-format").
  std::string format_option = "--input-format";
};

/// The options of a run over `workers` workers, as `quiver run` reads: read
/// ahead of the workers, Parquet decoded on Arrow's threads when cores are left
/// over, row groups on as many threads as the workers leave cores
/// (DecodeThreadsOfRun). The caller sets batch_rows, batch_bytes and columns.
InputReadOptions RunReadOptions(int workers);

/// Most rows Parquet decodes at a time, whatever InputReadOptions::batch_bytes allows.
inline constexpr int64_t kMaxDecodeRows = 65536;

/// An opened input: its batches and what is known about it up front.
struct InputFile {
  /// Batches of at most the requested number of rows. Errors name the file.
  std::shared_ptr<arrow::RecordBatchReader> reader;
  /// Every column of the file, also those InputReadOptions::columns leaves out.
  std::shared_ptr<arrow::Schema> file_schema;
  /// Rows in the file, when the format records them (Parquet, Arrow IPC file).
  std::optional<int64_t> total_rows;
  /// The format found: kArrowFile and kArrowStream are told apart by the magic.
  FileFormat format = FileFormat::kParquet;
};

/// Opens `path` in `format` and streams it in batches of at most `batch_rows`
/// rows: Parquet is decoded that many rows at a time, CSV is read in blocks
/// sized for about that many rows, and any larger batch is sliced (no copy).
/// A missing or unreadable file is an error that says which file and why (and,
/// for a missing one, the closest name beside it).
arrow::Result<InputFile> OpenInputFile(const std::string& path, FileFormat format,
                                       const InputReadOptions& options);

/// Same, every column, with the other options at their defaults.
arrow::Result<InputFile> OpenInputFile(const std::string& path, FileFormat format,
                                       int64_t batch_rows);

/// Checks that `path` names a file that exists: an error says which path, where
/// it was looked for, and the closest name beside it ("did you mean").
arrow::Status CheckInputPath(const std::string& path);

}  // namespace quiver::input
