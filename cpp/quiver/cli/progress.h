#pragma once

// What `quiver run` tells the user while and after it runs, on stderr: a
// progress line redrawn in place (terminals only) and a summary at the end.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "quiver/cli/row_errors.h"

namespace quiver::cli {

/// How far a run got.
struct ProgressFigures {
  int64_t rows = 0;
  /// Rows in the input, when the input format records them.
  std::optional<int64_t> total_rows;
  /// Arrow buffer bytes of the input read so far.
  int64_t bytes = 0;
  std::chrono::nanoseconds elapsed{0};
};

/// The figures of a finished run.
struct RunSummary {
  int64_t rows = 0;
  int64_t batches = 0;
  int64_t bytes = 0;
  std::chrono::nanoseconds elapsed{0};
  /// Time the workers spent inside UDF calls, summed over workers.
  std::chrono::nanoseconds worker_udf_time{0};
  /// Time spent writing the output.
  std::chrono::nanoseconds write_time{0};
  int workers = 1;
  /// The output file; empty when the output was discarded (noop).
  std::string output;
  /// Rows kept as null by UDFs with on_error=null, per UDF (row_errors.h).
  std::vector<FailedRows> failed_rows;
};

/// Formats a count with thousands separators: 1234567 -> "1,234,567".
std::string FormatCount(int64_t value);

/// Formats a duration for people: "4.2 ms", "840 ms", "1.25 s", "12.3 s", "2 min 05 s",
/// "1 h 02 min".
std::string FormatDuration(std::chrono::nanoseconds duration);

/// Formats one progress line (no line ending):
/// "quiver: 120,000 / 1,000,000 rows (12%)  85.3 MB/s  ETA 0:42".
std::string FormatProgressLine(const ProgressFigures& figures);

/// Formats the summary printed after a run, several lines, ending in a newline.
std::string FormatSummary(const RunSummary& summary);

/// \brief Redraws the progress line in place with '\r', at most 5 times a second.
///
/// Disabled (every call does nothing) unless constructed enabled; the caller
/// enables it only when the stream is a terminal.
class ProgressDisplay {
 public:
  ProgressDisplay(std::FILE* out, bool enabled) : out_(out), enabled_(enabled) {}

  /// Redraws the line when the last draw is at least 200 ms before `now`.
  void Update(const ProgressFigures& figures, std::chrono::steady_clock::time_point now);

  /// Erases the line, so that what is printed next starts on a clean line.
  void Clear();

 private:
  std::FILE* out_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace quiver::cli
