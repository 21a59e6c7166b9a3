#pragma once

// What every worker of this process is doing now (idle, or computing batch N
// since when), for `quiver run --progress json` and the progress line; and
// the CPU time of a worker process, for the run's metrics (docs/metrics.md).

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace quiver::worker {

/// One worker's state at one moment.
struct WorkerState {
  std::string worker;  // "worker 2 (pid 1234)"
  pid_t pid = 0;       // 0 for a remote worker
  std::vector<std::string> udfs;
  /// Batches sent and not yet answered.
  int64_t in_flight = 0;
  /// The batch it computes (the oldest unanswered), when in_flight > 0.
  uint64_t batch = 0;
  /// How long it has been computing that batch.
  std::chrono::nanoseconds computing_for{0};
  /// Resident memory of its process tree now; 0 when unknown (remote, or gone).
  int64_t rss_bytes = 0;
};

/// \brief The state of one UDF execution on one worker, listed in a
/// process-wide registry while it lives. Thread-safe.
class WorkerActivity {
 public:
  /// Registers the execution of `udfs` on `worker` (pid 0: remote).
  WorkerActivity(std::string worker, pid_t pid, std::vector<std::string> udfs);
  ~WorkerActivity();
  WorkerActivity(const WorkerActivity&) = delete;
  WorkerActivity& operator=(const WorkerActivity&) = delete;

  void BatchSent(uint64_t sequence);
  /// The oldest batch in flight was answered.
  void BatchAnswered();

  /// Returns the state of every live execution of this process, in the order they started.
  static std::vector<WorkerState> Snapshot();

 private:
  WorkerState State(std::chrono::steady_clock::time_point now) const;  // mutex_ held

  mutable std::mutex mutex_;
  const std::string worker_;
  const pid_t pid_;
  const std::vector<std::string> udfs_;
  std::deque<uint64_t> in_flight_;
  std::chrono::steady_clock::time_point front_since_;  // when the oldest began to compute
};

/// Returns the CPU time (user and system, all its threads) process `pid` used
/// so far, from its CPU clock (clock_getcpuclockid); -1 when it cannot be read
/// (the process is gone, or belongs to another user).
int64_t ProcessCpuNanos(pid_t pid);

}  // namespace quiver::worker
