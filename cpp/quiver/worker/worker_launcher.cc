#include "quiver/worker/worker_launcher.h"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <utility>

#include "quiver/sandbox/sandbox_policy.h"
#include "quiver/worker/fork_server.h"

namespace quiver::worker {
namespace {

class ForkExecLauncher : public WorkerLauncher {
 public:
  explicit ForkExecLauncher(int64_t log_capacity_bytes) : log_capacity_bytes_(log_capacity_bytes) {}

  arrow::Result<std::unique_ptr<ChildProcess>> Launch(
      const std::vector<std::string>& argv, const std::map<std::string, std::string>& environment,
      int inherited_fd) override {
    return ChildProcess::Spawn(argv, environment, log_capacity_bytes_, inherited_fd);
  }

 private:
  int64_t log_capacity_bytes_;
};

// Forks the worker from the fork server; on any failure starts it by fork/exec,
// saying why once, unless the server was only absent or restarting (nothing to
// fix: the next run has one).
class ForkServerLauncher : public WorkerLauncher {
 public:
  ForkServerLauncher(ForkServerSpec spec, size_t command_words, int64_t log_capacity_bytes)
      : spec_(std::move(spec)),
        command_words_(command_words),
        log_capacity_bytes_(log_capacity_bytes),
        fallback_(log_capacity_bytes) {}

  arrow::Result<std::unique_ptr<ChildProcess>> Launch(
      const std::vector<std::string>& argv, const std::map<std::string, std::string>& environment,
      int inherited_fd) override {
    // The server runs quiver.worker's main itself: it takes the words after the interpreter's.
    const std::vector<std::string> arguments(argv.begin() + command_words_, argv.end());
    auto forked =
        SpawnThroughForkServer(spec_, arguments, environment, log_capacity_bytes_, inherited_fd);
    if (forked.ok()) return forked;
    if (ForkServerFailureOf(forked.status()) == ForkServerFailure::kFailed) {
      WarnOnce(forked.status());
    }
    return fallback_.Launch(argv, environment, inherited_fd);
  }

 private:
  void WarnOnce(const arrow::Status& status) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (warned_) return;
    warned_ = true;
    std::fprintf(stderr, "quiver: starting workers without the fork server: %s\n",
                 status.message().c_str());
  }

  ForkServerSpec spec_;
  size_t command_words_;
  int64_t log_capacity_bytes_;
  ForkExecLauncher fallback_;
  std::mutex mutex_;
  bool warned_ = false;
};

}  // namespace

arrow::Result<std::unique_ptr<WorkerLauncher>> MakeWorkerLauncher(const WorkerSpec& spec) {
  // A spec whose interpreter was taken away starts by fork/exec, and so does one
  // that asks for the sandbox, whatever its launcher says: the engine enters the
  // sandbox between its own fork and exec, and the fork server's children are
  // not the engine's to sandbox (fail closed).
  if (spec.launcher == LauncherKind::kForkExec || spec.fork_server.python.empty() ||
      sandbox::SandboxRequested(spec.environment)) {
    return std::make_unique<ForkExecLauncher>(spec.log_capacity_bytes);
  }
  const std::vector<std::string> prefix = PythonWorkerCommand(spec.fork_server.python);
  if (spec.command.size() < prefix.size() ||
      !std::equal(prefix.begin(), prefix.end(), spec.command.begin())) {
    return arrow::Status::Invalid("WorkerSpec: the fork server starts only ",
                                  spec.fork_server.python,
                                  " -m quiver.worker; declare LauncherKind::kForkExec for ",
                                  spec.command.empty() ? "this command" : spec.command[0]);
  }
  return std::make_unique<ForkServerLauncher>(spec.fork_server, prefix.size(),
                                              spec.log_capacity_bytes);
}

}  // namespace quiver::worker
