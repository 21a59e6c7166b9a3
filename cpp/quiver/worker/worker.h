#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "quiver/transport/connection.h"
#include "quiver/worker/child_process.h"
#include "quiver/worker/worker_spec.h"

namespace quiver::worker {

/// \brief One running, authenticated worker process and its connection.
///
/// Handed out by WorkerDispatcher::Acquire and given back with Release. A worker
/// marked broken (its connection failed, it timed out, it broke the protocol) is
/// never handed out again.
class Worker {
 public:
  /// `process` is null for a remote worker, which this engine did not start.
  Worker(std::string id, std::unique_ptr<ChildProcess> process,
         std::unique_ptr<transport::Connection> connection, const WorkerSpec& spec);
  ~Worker();

  const std::string& id() const { return id_; }
  /// Returns the worker's pid, 0 for a remote worker.
  pid_t pid() const { return process_ ? process_->pid() : 0; }
  bool remote() const { return process_ == nullptr; }
  /// Returns false once the worker process ended (a remote worker counts as running).
  bool running() { return process_ == nullptr || !process_->TryWait(); }
  const WorkerSpec& spec() const { return spec_; }
  transport::Connection& connection() { return *connection_; }
  /// Returns the worker's process; only for workers this engine started.
  ChildProcess& process() { return *process_; }

  /// Records that the worker must not be reused.
  void MarkBroken() { broken_ = true; }
  bool broken() const { return broken_; }

  /// Counts executions run on this worker (to show reuse).
  int64_t executions() const { return executions_; }
  void CountExecution() { ++executions_; }

  /// Returns "worker ID (pid N)".
  std::string Describe() const;

  /// Explains why the worker stopped answering: waits briefly for it to exit,
  /// then gives its exit status or signal and the last lines of its output.
  std::string DescribeFailure();

 private:
  std::string id_;
  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<transport::Connection> connection_;
  const WorkerSpec& spec_;
  bool broken_ = false;
  int64_t executions_ = 0;
};

}  // namespace quiver::worker
