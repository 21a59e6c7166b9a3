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
#include "quiver/worker/worker_activity.h"

namespace quiver::cli {

/// How far a run got.
struct ProgressFigures {
  int64_t rows = 0;
  /// Rows in the input, when the input format records them.
  std::optional<int64_t> total_rows;
  /// Arrow buffer bytes of the input read so far.
  int64_t bytes = 0;
  std::chrono::nanoseconds elapsed{0};
  /// What each worker does now (worker/worker_activity.h).
  std::vector<worker::WorkerState> workers;
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

/// Returns the UDFs (joined by ',') of the group with the most batches in
/// flight, the one the run waits on most; "" unless `workers` run two groups or more.
std::string BusiestGroup(const std::vector<worker::WorkerState>& workers);

/// Formats one line of `--progress json` (no line ending): rows, total_rows,
/// bytes, elapsed_seconds, rows_per_second, final, and per worker its UDFs,
/// state ("idle" or "computing"), batch, seconds on it and RSS.
std::string FormatProgressJson(const ProgressFigures& figures, bool final);

/// Formats one worker's line of `--progress live` (no line ending), e.g.
/// "  worker 2 (pid 77)  y  computing batch 12 for 1.25 s  (2 in flight)  rss 81.0 MiB".
std::string FormatWorkerLine(const worker::WorkerState& state);

/// Formats the summary printed after a run, several lines, ending in a newline.
std::string FormatSummary(const RunSummary& summary);

/// How `quiver run` shows progress (--progress).
enum class ProgressMode {
  kLine,  // a line redrawn in place
  kJson,  // one JSON object per line, per update, and a last one with "final": true
  kLive,  // the line and one line per worker, redrawn in place
  kOff,
};

/// \brief Redraws the progress line in place with '\r', at most 5 times a
/// second; or writes a JSON line (kJson) at most twice a second.
///
/// Disabled (every call does nothing) unless constructed enabled; the caller
/// enables the line only when the stream is a terminal.
class ProgressDisplay {
 public:
  ProgressDisplay(std::FILE* out, bool enabled, ProgressMode mode = ProgressMode::kLine)
      : out_(out), enabled_(enabled && mode != ProgressMode::kOff), mode_(mode) {}

  /// Returns whether Update would draw at `now`: figures that cost (the
  /// workers' state) are gathered only then.
  bool Due(std::chrono::steady_clock::time_point now) const;

  /// Redraws the line when the last draw is long enough before `now`.
  void Update(const ProgressFigures& figures, std::chrono::steady_clock::time_point now);

  /// Writes the last JSON line (kJson; nothing for the line).
  void Finish(const ProgressFigures& figures);

  /// Erases the line, so that what is printed next starts on a clean line.
  void Clear();

 private:
  std::FILE* out_;
  bool enabled_;
  ProgressMode mode_;
  bool drawn_ = false;
  int lines_above_ = 0;  // kLive: the lines drawn above the cursor's
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace quiver::cli
