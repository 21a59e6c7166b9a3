#pragma once

// Writes the output of `quiver run` so that no partial output ever exists:
// batches go to a temporary file beside the output, which replaces the output
// (one rename) only once the run succeeded.

#include <memory>
#include <string>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "quiver/cli/file_format.h"

namespace quiver::cli {

/// Returns the temporary file an output is written to: `.NAME.quiver-tmp-PID`
/// in the output's directory (same file system, so the final rename is atomic).
std::string TemporaryOutputPath(const std::string& path, int pid);

/// Checks, before any work starts, that the output's directory exists.
arrow::Status CheckOutputDirectory(const std::string& path);

/// Checks that `output` is not the file `input` (same path, or another name of
/// the same file): replacing the input is refused unless `force` is set.
arrow::Status CheckOutputIsNotInput(const std::string& input, const std::string& output,
                                    bool force);

/// Removes the temporary files of `path` (`.NAME.quiver-tmp-PID`) whose PID no
/// longer exists: leftovers of a run that was killed (SIGKILL, a crash) before
/// it could clean up. Files of live PIDs are left alone. Returns those removed.
std::vector<std::string> RemoveStaleTemporaryOutputs(const std::string& path);

/// Writes batches of one schema in one format; see the file comment.
class OutputFile {
 public:
  /// Creates the temporary file for `path` (nothing for kNoop) and writes the
  /// format's header for `schema`; first removes stale temporary files of
  /// `path` left by killed runs (RemoveStaleTemporaryOutputs).
  static arrow::Result<std::unique_ptr<OutputFile>> Open(
      const std::string& path, FileFormat format, const std::shared_ptr<arrow::Schema>& schema);

  /// Removes the temporary file unless Commit succeeded.
  ~OutputFile();

  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  /// Appends one batch.
  arrow::Status Write(const std::shared_ptr<arrow::RecordBatch>& batch);

  /// Finishes the file and renames it over the output path. On failure the
  /// temporary file is removed and the output path is left as it was.
  arrow::Status Commit();

  /// Removes the temporary file; the output path is left as it was.
  void Discard();

  /// Returns the final output path ("" for kNoop).
  const std::string& path() const { return path_; }
  /// Returns the temporary file being written ("" for kNoop).
  const std::string& temporary_path() const { return temporary_path_; }

  /// Writes batches in one format; implemented per format in the .cc file.
  class Writer {
   public:
    virtual ~Writer() = default;
    virtual arrow::Status Write(const arrow::RecordBatch& batch) = 0;
    virtual arrow::Status Close() = 0;
  };

 private:
  OutputFile(std::string path, std::string temporary_path);

  std::string path_;
  std::string temporary_path_;
  std::unique_ptr<Writer> writer_;
  bool done_ = false;  // committed or discarded
};

}  // namespace quiver::cli
