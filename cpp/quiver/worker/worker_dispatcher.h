#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "quiver/worker/worker_spec.h"

namespace quiver::worker {

class Worker;

/// \brief Starts, pools, reuses and stops worker processes of one WorkerSpec.
///
/// Each worker is reached through the transport that WorkerSpec::transport
/// names in the registry (transport/registry.h), which runs its handshake: the
/// worker proves a per-worker secret. Endpoints that need files (sockets) live
/// in a private 0700 directory of the dispatcher. A worker is reused only when the run that
/// used it ended cleanly; after any transport failure it is stopped.
/// Thread-safe.
class WorkerDispatcher {
 public:
  /// Creates a dispatcher (and its private directory); starts no worker yet.
  /// Fails when WorkerSpec::transport is not a registered transport.
  static arrow::Result<std::unique_ptr<WorkerDispatcher>> Make(WorkerSpec spec);

  /// Stops every idle worker and removes the private directory.
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

  /// Returns the private 0700 directory of the workers' endpoints (sockets),
  /// removed by the destructor; for a process that must exit without running it.
  virtual const std::string& private_directory() const = 0;

  /// Returns how many worker processes this dispatcher has started so far.
  virtual int64_t workers_started() const = 0;
};

}  // namespace quiver::worker
