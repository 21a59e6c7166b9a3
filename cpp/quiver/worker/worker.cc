#include "quiver/worker/worker.h"

#include <signal.h>

#include <thread>
#include <utility>

namespace quiver::worker {

namespace {
// Lines of a worker's output quoted in an error message.
constexpr int kLogLinesInErrors = 20;
// Time a failed worker gets to exit before its failure is described.
constexpr std::chrono::milliseconds kExitWait{1000};
// Time a healthy worker gets to exit by itself once asked to, before SIGTERM.
constexpr std::chrono::milliseconds kPoliteExitWait{500};

// Waits until every process in `processes` ended or `deadline` passed.
void WaitForAll(const std::vector<ChildProcess*>& processes, io::Deadline deadline) {
  while (true) {
    bool all_ended = true;
    for (ChildProcess* process : processes) all_ended = process->TryWait() && all_ended;
    if (all_ended || std::chrono::steady_clock::now() >= deadline) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}
}  // namespace

void StopWorkers(std::vector<std::unique_ptr<Worker>> workers) {
  std::vector<Worker*> raw;
  for (auto& worker : workers) {
    if (worker != nullptr) raw.push_back(worker.get());
  }
  Worker::StopAll(raw);
  // Destroying them now finds their processes reaped.
}

void Worker::StopAll(const std::vector<Worker*>& workers) {
  std::vector<ChildProcess*> processes;
  std::chrono::milliseconds grace{0};
  const io::Deadline polite = io::DeadlineIn(kPoliteExitWait);
  std::vector<std::thread> requests;  // one per worker: the requests overlap
  for (Worker* worker : workers) {
    if (worker->stopped_) continue;
    worker->stopped_ = true;
    if (worker->process_ != nullptr && worker->broken_) {
      // A broken worker may hang in a UDF and never read its connection.
      worker->process_->Signal(SIGTERM);
    }
    if (worker->broken_ || worker->process_ == nullptr) {
      // A remote worker serves others too: only its connection is closed.
      worker->connection_->Shutdown();
    } else {
      requests.emplace_back([worker, polite] { worker->connection_->Close(polite); });
    }
    if (worker->process_ != nullptr) processes.push_back(worker->process_.get());
    grace = std::max(grace, worker->spec_->stop_grace);
  }
  for (auto& request : requests) request.join();
  WaitForAll(processes, polite);
  for (ChildProcess* process : processes) process->Signal(SIGTERM);
  WaitForAll(processes, io::DeadlineIn(grace));
  for (ChildProcess* process : processes) process->Signal(SIGKILL);
  for (ChildProcess* process : processes) process->Terminate(std::chrono::milliseconds(0));
}

std::string DescribeWorker(const std::string& id, pid_t pid) {
  return "worker " + id + " (pid " + std::to_string(pid) + ")";
}

std::string OutputTail(const ChildProcess& process) {
  const std::string lines = process.log().LastLines(kLogLinesInErrors, "  | ");
  if (lines.empty()) return "; it wrote nothing to stdout or stderr";
  return "; the last lines of its output:\n" + lines;
}

WorkerFailure ExamineFailure(const std::string& who, ChildProcess& process) {
  WorkerFailure failure;
  failure.detail.kind = UdfErrorKind::kWorkerLost;
  failure.detail.worker = who;
  failure.detail.worker_pid = process.pid();
  failure.detail.log_tail = process.log().LastLines(kLogLinesInErrors, "");
  failure.text = who;
  if (auto status = process.WaitFor(kExitWait)) {
    failure.text += " " + status->ToString();
    if (process.memory_cap() != nullptr && process.memory_cap()->exceeded()) {
      failure.detail.kind = UdfErrorKind::kOverMemoryCap;
      failure.text += ": " + process.memory_cap()->Explanation();
    }
    if (status->signaled) {
      failure.detail.signal = status->code;
    } else {
      failure.detail.exit_status = status->code;
    }
  } else {
    failure.text += " is still running but its connection failed";
  }
  failure.text += OutputTail(process);
  return failure;
}

Worker::Worker(std::string id, std::unique_ptr<ChildProcess> process,
               std::unique_ptr<transport::Connection> connection,
               std::shared_ptr<const WorkerSpec> spec)
    : id_(std::move(id)),
      process_(std::move(process)),
      connection_(std::move(connection)),
      spec_(std::move(spec)) {}

Worker::~Worker() { StopAll({this}); }

std::string Worker::Describe() const {
  if (process_ == nullptr) return "remote worker at " + connection_->endpoint();
  return DescribeWorker(id_, process_->pid());
}

UdfErrorDetail Worker::ErrorDetail(UdfErrorKind kind) const {
  UdfErrorDetail detail;
  detail.kind = kind;
  detail.worker = Describe();
  detail.worker_pid = pid();
  return detail;
}

WorkerFailure Worker::ExamineFailure() {
  if (process_ == nullptr) {
    return {Describe() + " stopped answering", ErrorDetail(UdfErrorKind::kWorkerLost)};
  }
  return worker::ExamineFailure(Describe(), *process_);
}

}  // namespace quiver::worker
