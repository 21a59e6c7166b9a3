#pragma once

// How the dispatcher starts a worker process. A WorkerSpec declares it
// (WorkerSpec::launcher): fork/exec of the command, or a fork of the per-user
// Python fork server (fork_server.h) that falls back to fork/exec. The
// dispatcher never looks at the command to choose.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "quiver/worker/child_process.h"
#include "quiver/worker/worker_spec.h"

namespace quiver::worker {

/// Starts the worker processes of one WorkerSpec. Thread-safe.
class WorkerLauncher {
 public:
  virtual ~WorkerLauncher() = default;

  /// Starts `argv` (the spec's command and the worker's own arguments) with the
  /// engine's environment plus `environment`; its stdout and stderr go to the
  /// returned process's log, and `inherited_fd` (if >= 0) becomes its
  /// descriptor kInheritedFd, as with ChildProcess::Spawn.
  virtual arrow::Result<std::unique_ptr<ChildProcess>> Launch(
      const std::vector<std::string>& argv, const std::map<std::string, std::string>& environment,
      int inherited_fd) = 0;
};

/// Returns the launcher `spec` declares. Fails when it declares the fork server
/// for a command other than `ForkServerSpec::python -m quiver.worker ...`: the
/// server runs only quiver's Python worker.
arrow::Result<std::unique_ptr<WorkerLauncher>> MakeWorkerLauncher(const WorkerSpec& spec);

}  // namespace quiver::worker
