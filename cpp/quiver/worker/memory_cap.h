#pragma once

// A worker's memory cap, enforced by the engine: a watcher thread reads the
// resident set size of the worker and its descendants and stops them once it is
// over the cap.
// Containers rarely give a process a writable cgroup, and RLIMIT_AS counts the
// address space Python and Arrow reserve but never touch (a Python worker with
// pyarrow maps about 3.5 times the memory it uses), so neither is used.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <arrow/result.h>

namespace quiver::worker {

/// Parses a size such as "512M", "2G", "1.5GiB", "300MB" or "1048576" (bytes) into
/// bytes; K, M, G and T are powers of 1024 with or without "B"/"iB".
arrow::Result<int64_t> ParseByteSize(std::string_view text);

/// Returns the resident set size of process `pid` in bytes (/proc/PID/statm);
/// fails when the process is gone.
arrow::Result<int64_t> ResidentBytes(pid_t pid);

/// Returns the resident set size of process `pid` and of all its descendants
/// (/proc/PID/task/TID/children, recursively): what a UDF's child processes hold
/// counts against its worker's cap. Fails when `pid` is gone.
arrow::Result<int64_t> TreeResidentBytes(pid_t pid);

/// \brief Stops a process once its resident memory, children included, is over a cap.
///
/// Polls every `interval`; when over the cap it sends SIGKILL to the process
/// group (or to the process when it leads no group) and remembers the size it
/// saw, which the failure message then reports. Destroying it stops the watch.
class MemoryCap {
 public:
  static constexpr std::chrono::milliseconds kDefaultInterval{20};

  /// Starts watching `pid`; `limit_bytes` must be positive.
  MemoryCap(pid_t pid, int64_t limit_bytes, std::chrono::milliseconds interval = kDefaultInterval);
  ~MemoryCap();
  /// Ends the watch (idempotent); call it once the process was reaped, before
  /// its pid can be reused.
  void Stop();
  MemoryCap(const MemoryCap&) = delete;
  MemoryCap& operator=(const MemoryCap&) = delete;

  int64_t limit_bytes() const { return limit_bytes_; }

  /// Returns the resident size that made the watcher stop the process, or
  /// nullopt while it stayed under its cap.
  std::optional<int64_t> exceeded() const;

  /// Returns e.g. "the engine stopped it: its resident memory reached 612 MiB,
  /// over its cap of 500 MiB (--worker-memory)", or "" when not exceeded.
  std::string Explanation() const;

 private:
  void Watch();

  const pid_t pid_;
  const int64_t limit_bytes_;
  const std::chrono::milliseconds interval_;
  std::atomic<int64_t> exceeded_at_{-1};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::mutex join_mutex_;  // Stop may run on several threads
  std::thread watcher_;
};

}  // namespace quiver::worker
