#include "quiver/worker/worker_dispatcher.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <utility>

#include "quiver/transport/registry.h"
#include "quiver/worker/process_state.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_launcher.h"

namespace quiver::worker {
namespace {

// Longest single wait for a starting worker, so that its exit is noticed soon.
constexpr std::chrono::milliseconds kStartStep{50};

std::string RandomSecret() {
  std::random_device source;
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string secret;
  for (int i = 0; i < 64; ++i) secret += kDigits[source() % 16];
  return secret;
}

constexpr char kSecretVariable[] = "QUIVER_WORKER_SECRET";
constexpr char kSecretFdVariable[] = "QUIVER_WORKER_SECRET_FD";

// Returns the read end of a pipe that holds `secret` and nothing more (the
// write end is closed, so the reader sees its end).
arrow::Result<io::UniqueFd> SecretPipe(const std::string& secret) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return arrow::Status::IOError("cannot make a pipe for a worker's secret: ",
                                  std::strerror(errno));
  }
  io::UniqueFd read_end(fds[0]);
  io::UniqueFd write_end(fds[1]);
  // 64 bytes fit in any pipe buffer: the write neither blocks nor comes short.
  if (::write(write_end.get(), secret.data(), secret.size()) !=
      static_cast<ssize_t>(secret.size())) {
    return arrow::Status::IOError("cannot write a worker's secret to its pipe: ",
                                  std::strerror(errno));
  }
  return read_end;
}

// Removes the private directories (quiver-PID-XXXXXX) of this user's runs whose
// engine is gone: one killed with SIGKILL could not remove its own. A directory
// whose PID runs (maybe reused by another process) is left alone.
void RemoveDeadRunDirectories(const std::string& base) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(base, error)) {
    const std::string name = entry.path().filename().string();
    long pid = 0;
    char suffix[8] = {};
    if (std::sscanf(name.c_str(), "quiver-%ld-%6s", &pid, suffix) != 2 || pid <= 1 ||
        std::strlen(suffix) != 6 || name.size() != name.find('-', 7) + 7) {
      continue;
    }
    struct stat info {};
    if (::lstat(entry.path().c_str(), &info) != 0 || !S_ISDIR(info.st_mode) ||
        info.st_uid != ::getuid()) {
      continue;
    }
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::filesystem::remove_all(entry.path(), error);
  }
}

arrow::Result<std::string> MakePrivateDirectory() {
  const char* base_variable = std::getenv("TMPDIR");
  const std::string base =
      base_variable != nullptr && *base_variable != '\0' ? base_variable : "/tmp";
  RemoveDeadRunDirectories(base);
  std::string pattern = base + "/quiver-" + std::to_string(::getpid()) + "-XXXXXX";
  // mkdtemp creates the directory with mode 0700: only this user reaches the sockets.
  if (::mkdtemp(pattern.data()) == nullptr) {
    return arrow::Status::IOError("cannot create a private socket directory ", pattern, ": ",
                                  std::strerror(errno), " (TMPDIR=", base,
                                  "; set TMPDIR to a writable directory)");
  }
  return pattern;
}

// A worker process as its transport sees it while it starts.
class StartingProcess : public transport::WorkerProcess {
 public:
  StartingProcess(std::string id, ChildProcess* process) : id_(std::move(id)), process_(process) {}
  pid_t pid() const override { return process_->pid(); }
  std::string Describe() const override { return DescribeWorker(id_, process_->pid()); }
  std::string DescribeFailure() override { return ExamineFailure(Describe(), *process_).text; }

 private:
  std::string id_;
  ChildProcess* process_;
};

// A worker started but not yet connected.
struct Starting {
  std::string id;
  std::string secret;
  std::unique_ptr<transport::WorkerEndpoint> endpoint;
  std::unique_ptr<ChildProcess> process;
};

class WorkerDispatcherImpl : public WorkerDispatcher {
 public:
  WorkerDispatcherImpl(std::shared_ptr<const WorkerSpec> spec,
                       std::shared_ptr<transport::Transport> transport,
                       std::unique_ptr<WorkerLauncher> launcher, std::string directory)
      : spec_(std::move(spec)),
        transport_(std::move(transport)),
        launcher_(std::move(launcher)),
        directory_(std::move(directory)) {}

  ~WorkerDispatcherImpl() override {
    std::vector<std::unique_ptr<Worker>> idle;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& worker : idle_) idle.push_back(std::move(worker));
      idle_.clear();
    }
    StopWorkers(std::move(idle));
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }

  arrow::Result<std::unique_ptr<Worker>> Acquire() override {
    ARROW_ASSIGN_OR_RAISE(auto workers, AcquireMany(1));
    return std::move(workers.front());
  }

  arrow::Result<std::vector<std::unique_ptr<Worker>>> AcquireMany(int count) override {
    std::vector<std::unique_ptr<Worker>> workers;
    while (static_cast<int>(workers.size()) < count) {
      auto idle = TakeIdle();
      if (idle == nullptr) break;
      workers.push_back(std::move(idle));
    }
    while (!spec_->remote_workers.empty() && static_cast<int>(workers.size()) < count) {
      ARROW_ASSIGN_OR_RAISE(auto remote, ConnectRemote());
      workers.push_back(std::move(remote));
    }
    // Start all missing workers before waiting for any: their start-up overlaps.
    std::vector<Starting> starting;
    while (static_cast<int>(workers.size() + starting.size()) < count) {
      ARROW_ASSIGN_OR_RAISE(Starting next, Start());
      starting.push_back(std::move(next));
    }
    for (auto& next : starting) {
      ARROW_ASSIGN_OR_RAISE(auto worker, Connect(std::move(next)));
      workers.push_back(std::move(worker));
    }
    return workers;
  }

  void Release(std::unique_ptr<Worker> worker) override {
    if (worker == nullptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (spec_->reuse && !worker->broken() && worker->running() &&
        static_cast<int>(idle_.size()) < spec_->max_idle_workers) {
      idle_.push_back(std::move(worker));
    }
    // Otherwise the worker is destroyed here, which stops and reaps its process.
  }

  const WorkerSpec& spec() const override { return *spec_; }

  const std::string& private_directory() const override { return directory_; }

  int64_t workers_started() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return workers_started_;
  }

 private:
  // Returns a live idle worker, or null when the pool has none.
  std::unique_ptr<Worker> TakeIdle() {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!idle_.empty()) {
      std::unique_ptr<Worker> worker = std::move(idle_.front());
      idle_.pop_front();
      if (worker->running()) return worker;  // alive: reuse it
    }
    return nullptr;
  }

  arrow::Result<Starting> Start() {
    Starting starting;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      starting.id = std::to_string(++workers_started_);
    }
    starting.secret = RandomSecret();
    transport::EndpointOptions options;
    options.worker_id = starting.id;
    options.private_directory = directory_;
    options.limits = protocol::FramingLimits{int64_t{64} << 20, spec_->max_message_bytes};
    options.tls_root_certificates_file = spec_->tls_root_certificates_file;
    ARROW_ASSIGN_OR_RAISE(starting.endpoint, transport_->Prepare(options));
    std::vector<std::string> argv = spec_->command;
    for (auto& argument : starting.endpoint->worker_arguments()) argv.push_back(argument);
    if (!spec_->tls_certificate_file.empty()) {
      argv.insert(argv.end(),
                  {"--tls-cert", spec_->tls_certificate_file, "--tls-key", spec_->tls_key_file});
    }
    argv.insert(argv.end(), {"--id", starting.id, "--connection", starting.endpoint->endpoint()});
    // The secret goes through a pipe the worker reads once and closes: in the
    // environment, UDF code could read it from /proc/self/environ.
    ARROW_ASSIGN_OR_RAISE(io::UniqueFd secret_pipe, SecretPipe(starting.secret));
    auto environment = spec_->environment;
    environment.erase(kSecretVariable);
    environment[kSecretFdVariable] = std::to_string(kInheritedFd);
    for (auto& [name, value] : starting.endpoint->worker_environment()) environment[name] = value;
    ARROW_ASSIGN_OR_RAISE(starting.process,
                          launcher_->Launch(argv, environment, secret_pipe.get()));
    if (spec_->memory_limit_bytes > 0) starting.process->CapMemory(spec_->memory_limit_bytes);
    if (!spec_->log_dir.empty()) {
      const std::string path = spec_->log_dir + "/worker-" + starting.id + "-" +
                               std::to_string(starting.process->pid()) + ".jsonl";
      ARROW_ASSIGN_OR_RAISE(auto sink, LogSink::Open(path, starting.id, starting.process->pid()));
      starting.process->SetLogSink(std::move(sink));
    }
    return starting;
  }

  // Waits for the worker to become reachable and pass its transport's
  // handshake; stops it on any failure.
  arrow::Result<std::unique_ptr<Worker>> Connect(Starting starting) {
    const io::Deadline deadline = io::DeadlineIn(spec_->start_timeout);
    StartingProcess process(starting.id, starting.process.get());
    const transport::Readiness readiness = starting.endpoint->readiness();
    while (true) {
      const io::Deadline step = std::min(deadline, io::DeadlineIn(kStartStep));
      ARROW_ASSIGN_OR_RAISE(auto connection,
                            starting.endpoint->Accept(process, starting.secret, step, deadline));
      if (connection != nullptr) {
        return std::make_unique<Worker>(starting.id, std::move(starting.process),
                                        std::move(connection), spec_);
      }
      if (auto status = starting.process->TryWait()) {
        const MemoryCap* cap = starting.process->memory_cap();
        if (cap != nullptr && cap->exceeded()) {  // the cap, not the worker, is what is wrong
          return arrow::Status::IOError(process.Describe(), " ", status->ToString(), " before it ",
                                        readiness.past, ": ", cap->Explanation(),
                                        "; the cap is too small for the worker to start: raise it",
                                        OutputTail(*starting.process));
        }
        return arrow::Status::IOError(process.Describe(), " ", status->ToString(), " before it ",
                                      readiness.past, OutputTail(*starting.process), Hint());
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        // Read before stopping it: what it waited on tells a hang from a starved machine.
        const std::string state = DescribeProcessState(starting.process->pid());
        starting.process->Terminate(spec_->stop_grace);
        const std::string last = starting.endpoint->last_failure();
        return arrow::Status::IOError(process.Describe(), " did not ", readiness.present,
                                      " within ", spec_->start_timeout.count(),
                                      " ms and was stopped", last.empty() ? "" : " (" + last + ")",
                                      state.empty() ? "" : "; " + state,
                                      OutputTail(*starting.process), Hint());
      }
    }
  }

  // Connects to the next remote worker (round robin) through the transport of
  // its endpoint's scheme.
  arrow::Result<std::unique_ptr<Worker>> ConnectRemote() {
    size_t index = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      index = next_remote_++ % spec_->remote_workers.size();
    }
    const RemoteWorker& remote = spec_->remote_workers[index];
    ARROW_ASSIGN_OR_RAISE(auto transport,
                          transport::FindTransport(transport::EndpointScheme(remote.endpoint)));
    ARROW_ASSIGN_OR_RAISE(auto connection,
                          transport->ConnectRemote(
                              {remote.endpoint, remote.secret, remote.tls_root_certificates_file},
                              spec_->start_timeout));
    std::string id;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      id = "r" + std::to_string(++workers_started_);
    }
    return std::make_unique<Worker>(id, nullptr, std::move(connection), spec_);
  }

  // What to check when a worker does not start: the Python package for quiver's own
  // worker, the protocol for any other program.
  std::string Hint() const {
    const std::vector<std::string>& command = spec_->command;
    const std::string program = command.empty() ? "" : command[0];
    const bool python_worker =
        std::find(command.begin(), command.end(), "quiver.worker") != command.end();
    if (python_worker) {
      return "\n(worker command: " + program +
             " ...; is the quiver Python package installed for it?)";
    }
    return "\n(worker command: " + program +
           " ...; does it speak the quiver worker protocol? `quiver conformance -- " + program +
           "` checks it against docs/protocol.md)";
  }

  std::shared_ptr<const WorkerSpec> spec_;
  std::shared_ptr<transport::Transport> transport_;
  std::unique_ptr<WorkerLauncher> launcher_;
  std::string directory_;
  mutable std::mutex mutex_;
  std::deque<std::unique_ptr<Worker>> idle_;
  int64_t workers_started_ = 0;
  size_t next_remote_ = 0;
};

}  // namespace

WorkerDispatcher::~WorkerDispatcher() = default;

arrow::Result<std::unique_ptr<WorkerDispatcher>> WorkerDispatcher::Make(WorkerSpec spec) {
  if (spec.command.empty() && spec.remote_workers.empty()) {
    return arrow::Status::Invalid("WorkerSpec needs a command or remote workers");
  }
  ARROW_ASSIGN_OR_RAISE(auto transport, transport::FindTransport(spec.transport));
  ARROW_ASSIGN_OR_RAISE(auto launcher, MakeWorkerLauncher(spec));
  ARROW_ASSIGN_OR_RAISE(std::string directory, MakePrivateDirectory());
  return std::make_unique<WorkerDispatcherImpl>(std::make_shared<const WorkerSpec>(std::move(spec)),
                                                std::move(transport), std::move(launcher),
                                                std::move(directory));
}

}  // namespace quiver::worker
