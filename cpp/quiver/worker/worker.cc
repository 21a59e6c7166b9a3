#include "quiver/worker/worker.h"

#include <utility>

namespace quiver::worker {

namespace {
// Lines of a worker's output quoted in an error message.
constexpr int kLogLinesInErrors = 20;
// Time a failed worker gets to exit before its failure is described.
constexpr std::chrono::milliseconds kExitWait{1000};
}  // namespace

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

Worker::~Worker() {
  // Closing the connection asks the worker to exit; Terminate makes sure.
  connection_->Shutdown();
  if (process_ != nullptr && !process_->WaitFor(std::chrono::milliseconds(200))) {
    process_->Terminate(spec_->stop_grace);
  }
}

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
