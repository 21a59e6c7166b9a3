#include "quiver/worker/worker_dispatcher.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <utility>

#include "quiver/io/unix_socket.h"
#include "quiver/transport/uds/uds_connection.h"
#include "quiver/worker/worker.h"

namespace quiver::worker {
namespace {

constexpr uint32_t kProtocolVersion = 1;

std::string RandomSecret() {
  std::random_device source;
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string secret;
  for (int i = 0; i < 64; ++i) secret += kDigits[source() % 16];
  return secret;
}

// Compares in time that does not depend on where the strings differ.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i) difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  return difference == 0;
}

arrow::Result<std::string> MakePrivateDirectory() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/quiver-" +
                        std::to_string(::getpid()) + "-XXXXXX";
  // mkdtemp creates the directory with mode 0700: only this user reaches the sockets.
  if (::mkdtemp(pattern.data()) == nullptr) {
    return arrow::Status::IOError("cannot create a private socket directory ", pattern);
  }
  return pattern;
}

// A worker started but not yet connected.
struct Starting {
  std::string id;
  std::string secret;
  std::string socket_path;
  io::UniqueFd listener;
  std::unique_ptr<ChildProcess> process;
};

class WorkerDispatcherImpl : public WorkerDispatcher {
 public:
  WorkerDispatcherImpl(WorkerSpec spec, std::string directory)
      : spec_(std::move(spec)), directory_(std::move(directory)) {}

  ~WorkerDispatcherImpl() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      idle_.clear();  // each Worker stops its process
    }
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
    if (spec_.reuse && !worker->broken() && !worker->process().TryWait() &&
        static_cast<int>(idle_.size()) < spec_.max_idle_workers) {
      idle_.push_back(std::move(worker));
    }
    // Otherwise the worker is destroyed here, which stops and reaps its process.
  }

  const WorkerSpec& spec() const override { return spec_; }

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
      if (!worker->process().TryWait()) return worker;  // alive: reuse it
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
    starting.socket_path = directory_ + "/worker-" + starting.id + ".sock";
    ARROW_ASSIGN_OR_RAISE(starting.listener, io::ListenUnixSocket(starting.socket_path));
    std::vector<std::string> argv = spec_.command;
    argv.insert(argv.end(), {"--id", starting.id, "--connection", "unix:" + starting.socket_path});
    auto environment = spec_.environment;
    environment["QUIVER_WORKER_SECRET"] = starting.secret;
    ARROW_ASSIGN_OR_RAISE(starting.process,
                          ChildProcess::Spawn(argv, environment, spec_.log_capacity_bytes));
    return starting;
  }

  // Waits for the worker to connect and authenticate; stops it on any failure.
  arrow::Result<std::unique_ptr<Worker>> Connect(Starting starting) {
    const io::Deadline deadline = io::DeadlineIn(spec_.start_timeout);
    ARROW_ASSIGN_OR_RAISE(io::UniqueFd socket, AwaitConnection(starting, deadline));
    // The connection is made: nobody else may connect to this path again.
    starting.listener.Reset();
    ::unlink(starting.socket_path.c_str());
    auto connection = transport::uds::MakeUdsConnection(
        std::move(socket), "unix:" + starting.socket_path,
        protocol::FramingLimits{int64_t{64} << 20, spec_.max_message_bytes});
    auto worker = std::make_unique<Worker>(starting.id, std::move(starting.process),
                                           std::move(connection), spec_);
    ARROW_RETURN_NOT_OK(Authenticate(worker.get(), starting.secret, deadline));
    return worker;
  }

  arrow::Result<io::UniqueFd> AwaitConnection(Starting& starting, io::Deadline deadline) {
    const std::string who =
        "worker " + starting.id + " (pid " + std::to_string(starting.process->pid()) + ")";
    while (true) {
      const io::Deadline step = std::min(deadline, io::DeadlineIn(std::chrono::milliseconds(50)));
      ARROW_ASSIGN_OR_RAISE(auto socket, io::AcceptUnixSocket(starting.listener, step));
      if (socket) return std::move(*socket);
      if (auto status = starting.process->TryWait()) {
        return arrow::Status::IOError(who, " ", status->ToString(), " before it connected",
                                      Output(*starting.process), Hint());
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        starting.process->Terminate(spec_.stop_grace);
        return arrow::Status::IOError(who, " did not connect within ", spec_.start_timeout.count(),
                                      " ms and was stopped", Output(*starting.process), Hint());
      }
    }
  }

  arrow::Status Authenticate(Worker* worker, const std::string& secret, io::Deadline deadline) {
    auto reply = worker->connection().Receive(deadline);
    if (!reply.ok()) {
      worker->MarkBroken();
      return arrow::Status::IOError("no Hello from ", worker->DescribeFailure());
    }
    if (!reply->control || !reply->control->has_hello()) {
      return arrow::Status::IOError(worker->Describe(),
                                    " did not start with Hello: it does not speak quiver.v1");
    }
    const v1::Hello& hello = reply->control->hello();
    if (!ConstantTimeEquals(hello.secret(), secret)) {
      return arrow::Status::IOError(worker->Describe(),
                                    " presented a wrong secret and was refused");
    }
    if (hello.protocol_version() != kProtocolVersion) {
      return arrow::Status::IOError(worker->Describe(), " speaks protocol version ",
                                    hello.protocol_version(), "; this engine speaks ",
                                    kProtocolVersion);
    }
    return arrow::Status::OK();
  }

  static std::string Output(const ChildProcess& process) {
    const std::string lines = process.log().LastLines(20, "  | ");
    return lines.empty() ? "; it wrote nothing" : "; the last lines of its output:\n" + lines;
  }

  std::string Hint() const {
    return "\n(worker command: " + (spec_.command.empty() ? "" : spec_.command[0]) +
           " ...; is the quiver Python package installed for it?)";
  }

  WorkerSpec spec_;
  std::string directory_;
  mutable std::mutex mutex_;
  std::deque<std::unique_ptr<Worker>> idle_;
  int64_t workers_started_ = 0;
};

}  // namespace

std::vector<std::string> PythonWorkerCommand(const std::string& python) {
  return {python, "-m", "quiver.worker"};
}

WorkerDispatcher::~WorkerDispatcher() = default;

arrow::Result<std::unique_ptr<WorkerDispatcher>> WorkerDispatcher::Make(WorkerSpec spec) {
  if (spec.command.empty()) return arrow::Status::Invalid("WorkerSpec.command is empty");
  ARROW_ASSIGN_OR_RAISE(std::string directory, MakePrivateDirectory());
  return std::make_unique<WorkerDispatcherImpl>(std::move(spec), std::move(directory));
}

}  // namespace quiver::worker
