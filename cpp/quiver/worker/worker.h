#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "quiver/protocol/udf_error.h"
#include "quiver/transport/connection.h"
#include "quiver/worker/child_process.h"
#include "quiver/worker/worker_spec.h"

namespace quiver::worker {

/// Returns "worker ID (pid N)", the name of a started worker in every message.
std::string DescribeWorker(const std::string& id, pid_t pid);

/// Returns what `process` wrote last, as messages end with it: "; the last lines
/// of its output:\n  | ..." or "; it wrote nothing to stdout or stderr".
std::string OutputTail(const ChildProcess& process);

/// Why a worker stopped answering, as text and as a kWorkerLost detail.
struct WorkerFailure {
  /// e.g. "worker 3 (pid 1234) was killed by signal 9 (SIGKILL); the last lines ..."
  std::string text;
  UdfErrorDetail detail;
};

/// Waits briefly for the worker process `who` to exit, then describes how it
/// ended and what it wrote last.
WorkerFailure ExamineFailure(const std::string& who, ChildProcess& process);

class Worker;

/// Stops `workers` all at once, so that N workers take about as long as one:
/// each healthy worker is asked to exit through its connection, a broken one
/// gets SIGTERM at once; those still running after a short wait get SIGTERM,
/// and SIGKILL after the spec's stop grace. Returns when all are reaped.
void StopWorkers(std::vector<std::unique_ptr<Worker>> workers);

/// \brief One running, authenticated worker process and its connection.
///
/// Handed out by WorkerDispatcher::Acquire and given back with Release. A worker
/// marked broken (its connection failed, it timed out, it broke the protocol) is
/// never handed out again.
class Worker {
 public:
  /// `process` is null for a remote worker, which this engine did not start.
  /// The spec is shared: a worker may outlive the dispatcher that started it.
  Worker(std::string id, std::unique_ptr<ChildProcess> process,
         std::unique_ptr<transport::Connection> connection, std::shared_ptr<const WorkerSpec> spec);
  ~Worker();

  const std::string& id() const { return id_; }
  /// Returns the worker's pid, 0 for a remote worker.
  pid_t pid() const { return process_ ? process_->pid() : 0; }
  bool remote() const { return process_ == nullptr; }
  /// Returns false once the worker process ended (a remote worker counts as running).
  bool running() { return process_ == nullptr || !process_->TryWait(); }
  const WorkerSpec& spec() const { return *spec_; }
  transport::Connection& connection() { return *connection_; }
  /// Returns the worker's process; only for workers this engine started.
  ChildProcess& process() { return *process_; }

  /// Records that the worker must not be reused.
  void MarkBroken() { broken_ = true; }
  bool broken() const { return broken_; }

  /// Counts executions run on this worker (to show reuse).
  int64_t executions() const { return executions_; }
  /// Counts a new execution; from here on, errors quote only its output.
  void CountExecution() {
    ++executions_;
    if (process_ != nullptr) process_->log().StartSection();
  }

  /// Returns "worker ID (pid N)", or "remote worker at ENDPOINT".
  std::string Describe() const;

  /// Returns a detail of `kind` that names this worker.
  UdfErrorDetail ErrorDetail(UdfErrorKind kind) const;

  /// Explains why the worker stopped answering: waits briefly for it to exit,
  /// then gives its exit status or signal and the last lines of its output.
  WorkerFailure ExamineFailure();

  /// Returns ExamineFailure().text.
  std::string DescribeFailure() { return ExamineFailure().text; }

 private:
  friend void StopWorkers(std::vector<std::unique_ptr<Worker>> workers);
  // Stops the workers in `workers` together (see StopWorkers).
  static void StopAll(const std::vector<Worker*>& workers);

  std::string id_;
  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<transport::Connection> connection_;
  std::shared_ptr<const WorkerSpec> spec_;
  bool broken_ = false;
  bool stopped_ = false;  // StopAll ran
  int64_t executions_ = 0;
};

}  // namespace quiver::worker
