#pragma once

// A worker's output kept in a file, one JSON object a line, for `quiver run
// --log-dir` and `quiver logs` (docs/metrics.md, "Logs").

#include <sys/types.h>

#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>

namespace quiver::worker {

/// Longest line kept whole; a longer one is cut into pieces of this size.
inline constexpr size_t kMaxLogLineBytes = 16 * 1024;

/// Returns `text` as a JSON string literal; bytes that are not UTF-8 become U+FFFD.
std::string JsonQuotedRepaired(std::string_view text);

/// A worker's line, as it is kept.
struct LogLine {
  /// "debug", "info", "warning", "error" or "critical" for a line in the
  /// logging format (docs/protocol.md, "Worker output"), else "output".
  std::string level = "output";
  /// The logger that wrote it ("" for plain output).
  std::string logger;
  /// The line without its level and logger.
  std::string message;
};

/// Reads `line` as a worker wrote it: "LEVEL:LOGGER:MESSAGE" with a Python
/// logging level name is a log record, anything else plain output.
LogLine ParseLogLine(std::string_view line);

/// \brief The file one worker's stdout and stderr go to, one JSON object per
/// line: time, UDFs, worker, pid, batch, level, logger, message.
///
/// Fed by the thread that reads the worker's output; told by the worker's
/// execution which UDFs run and which batches are in flight. Thread-safe.
class LogSink {
 public:
  /// Creates `path` (or appends to it) for the worker called `worker` (its
  /// dispatcher's id) with process id `pid`.
  static arrow::Result<std::shared_ptr<LogSink>> Open(const std::string& path, std::string worker,
                                                      pid_t pid);
  ~LogSink();
  LogSink(const LogSink&) = delete;
  LogSink& operator=(const LogSink&) = delete;

  /// Names the UDFs the worker runs from now on.
  void SetUdfs(const std::vector<std::string>& udfs);
  /// Records that batch `sequence` was sent; the oldest one unanswered is the
  /// batch a line is attributed to.
  void BatchSent(uint64_t sequence);
  /// Records that the oldest batch in flight was answered.
  void BatchAnswered();
  /// Takes bytes the worker wrote; every complete line is written out.
  void Write(std::string_view bytes);
  /// Writes out a last line that has no newline.
  void Flush();

 private:
  LogSink(std::FILE* file, std::string worker, pid_t pid);
  void WriteLine(std::string_view line);  // mutex_ held

  std::mutex mutex_;
  std::FILE* file_;
  const std::string worker_;
  const pid_t pid_;
  std::string udfs_;  // JSON list
  std::deque<uint64_t> in_flight_;
  std::string partial_;  // bytes after the last newline
};

}  // namespace quiver::worker
