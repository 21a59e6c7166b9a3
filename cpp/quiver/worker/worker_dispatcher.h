#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "quiver/worker/worker_spec.h"

namespace quiver::worker {

class Worker;

/// Returns the command that starts quiver's Python worker with `python`.
std::vector<std::string> PythonWorkerCommand(const std::string& python);

/// \brief Starts, pools, reuses and stops worker processes of one WorkerSpec.
///
/// Workers connect back over Unix sockets in a private 0700 directory and prove
/// themselves with a per-worker secret. A worker is reused only when the run that
/// used it ended cleanly; after any transport failure it is stopped.
/// Thread-safe.
class WorkerDispatcher {
 public:
  /// Creates a dispatcher (and its private socket directory); starts no worker yet.
  static arrow::Result<std::unique_ptr<WorkerDispatcher>> Make(WorkerSpec spec);

  /// Stops every idle worker and removes the socket directory.
  virtual ~WorkerDispatcher();

  /// Returns an idle worker from the pool, or starts a new one and waits until
  /// it connected and authenticated.
  virtual arrow::Result<std::unique_ptr<Worker>> Acquire() = 0;

  /// Returns `count` workers: idle ones first, the rest started all at once, so
  /// that N workers take about as long to start as one.
  virtual arrow::Result<std::vector<std::unique_ptr<Worker>>> AcquireMany(int count) = 0;

  /// Gives a worker back: pooled when it is healthy and the spec allows reuse,
  /// else stopped (SIGTERM, then SIGKILL after the grace period) and reaped.
  virtual void Release(std::unique_ptr<Worker> worker) = 0;

  /// Returns the spec the workers are started with.
  virtual const WorkerSpec& spec() const = 0;

  /// Returns how many worker processes this dispatcher has started so far.
  virtual int64_t workers_started() const = 0;
};

}  // namespace quiver::worker
