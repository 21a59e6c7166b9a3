#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "quiver/worker/log_sink.h"

namespace quiver::worker {

/// \brief Keeps the last bytes a worker wrote to stdout and stderr, up to a capacity.
///
/// Errors about a worker quote its last lines, so a crash shows its cause
/// (a Python traceback, a faulthandler dump) without unbounded memory. Thread-safe.
class BoundedLog {
 public:
  /// Keeps at most `capacity_bytes` (older bytes are dropped).
  explicit BoundedLog(int64_t capacity_bytes);

  /// Adds bytes at the end, and gives them to the sink when there is one.
  void Append(std::string_view bytes);

  /// Gives every byte from now on to `sink` too (a --log-dir file), after the
  /// ones kept so far when none was dropped.
  void SetSink(std::shared_ptr<LogSink> sink);
  /// Returns the sink, or null.
  std::shared_ptr<LogSink> sink() const;

  /// Returns up to `max_lines` last lines written since the section began
  /// (StartSection), each prefixed with `indent`.
  std::string LastLines(int max_lines, std::string_view indent = "  ") const;

  /// Begins a new section: LastLines no longer quotes what was written before,
  /// so an error of one UDF execution on a reused worker shows only its own
  /// output, not that of earlier, unrelated executions.
  void StartSection();

  /// Returns the number of bytes written over the log's life, dropped ones included.
  int64_t total_bytes() const;

 private:
  int64_t capacity_bytes_;
  mutable std::mutex mutex_;
  std::string text_;
  int64_t total_bytes_ = 0;
  int64_t section_start_ = 0;  // total_bytes_ when the current section began
  // --log-dir's file, or null.
  std::shared_ptr<LogSink> sink_;
};

}  // namespace quiver::worker
