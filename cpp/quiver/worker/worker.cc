#include "quiver/worker/worker.h"

#include <utility>

namespace quiver::worker {

namespace {
constexpr int kLogLinesInErrors = 20;
}  // namespace

Worker::Worker(std::string id, std::unique_ptr<ChildProcess> process,
               std::unique_ptr<transport::Connection> connection, const WorkerSpec& spec)
    : id_(std::move(id)),
      process_(std::move(process)),
      connection_(std::move(connection)),
      spec_(spec) {}

Worker::~Worker() {
  // Closing the connection asks the worker to exit; Terminate makes sure.
  connection_->Shutdown();
  if (process_ != nullptr && !process_->WaitFor(std::chrono::milliseconds(200))) {
    process_->Terminate(spec_.stop_grace);
  }
}

std::string Worker::Describe() const {
  if (process_ == nullptr) return "remote worker at " + connection_->endpoint();
  return "worker " + id_ + " (pid " + std::to_string(process_->pid()) + ")";
}

std::string Worker::DescribeFailure() {
  std::string text = Describe();
  if (process_ == nullptr) return text + " stopped answering";
  if (auto status = process_->WaitFor(std::chrono::milliseconds(1000))) {
    text += " " + status->ToString();
  } else {
    text += " is still running but its connection failed";
  }
  const std::string lines = process_->log().LastLines(kLogLinesInErrors, "  | ");
  if (lines.empty()) return text + "; it wrote nothing to stdout or stderr";
  return text + "; the last lines of its output:\n" + lines;
}

}  // namespace quiver::worker
