#include "quiver/worker/worker_dispatcher.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <utility>

#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "quiver/io/unix_socket.h"
#include "quiver/transport/grpc/grpc_connection.h"
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
  std::string endpoint;     // what the worker was given with --connection
  std::string socket_path;  // uds and grpc+unix: the socket file
  io::UniqueFd listener;    // uds: the engine's listening socket
  std::unique_ptr<ChildProcess> process;
};

// Returns a TCP port on the loopback interface that was free a moment ago. The
// worker binds it right after; a port taken in between makes its start fail
// with a clear error, never a connection to the wrong process (the engine
// checks the pid the worker reports).
arrow::Result<int> FreeLoopbackPort() {
  io::UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (!probe.valid() || ::bind(probe.get(), reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return arrow::Status::IOError("cannot find a free loopback TCP port");
  }
  return static_cast<int>(ntohs(address.sin_port));
}

arrow::Result<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return arrow::Status::IOError("cannot read ", path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

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
    while (!spec_.remote_workers.empty() && static_cast<int>(workers.size()) < count) {
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
    if (spec_.reuse && !worker->broken() && worker->running() &&
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
    starting.socket_path = directory_ + "/worker-" + starting.id + ".sock";
    std::vector<std::string> argv = spec_.command;
    if (spec_.transport == "uds") {
      ARROW_ASSIGN_OR_RAISE(starting.listener, io::ListenUnixSocket(starting.socket_path));
      starting.endpoint = "unix:" + starting.socket_path;
    } else if (spec_.transport == "grpc+unix") {
      starting.endpoint = "grpc+unix:" + starting.socket_path;
    } else {
      ARROW_ASSIGN_OR_RAISE(int port, FreeLoopbackPort());
      starting.endpoint = "grpc+tcp:127.0.0.1:" + std::to_string(port);
    }
    if (spec_.transport != "uds") argv.insert(argv.end(), {"--transport", "grpc"});
    if (!spec_.tls_certificate_file.empty()) {
      argv.insert(argv.end(),
                  {"--tls-cert", spec_.tls_certificate_file, "--tls-key", spec_.tls_key_file});
    }
    argv.insert(argv.end(), {"--id", starting.id, "--connection", starting.endpoint});
    auto environment = spec_.environment;
    environment["QUIVER_WORKER_SECRET"] = starting.secret;
    ARROW_ASSIGN_OR_RAISE(starting.process,
                          ChildProcess::Spawn(argv, environment, spec_.log_capacity_bytes));
    return starting;
  }

  // Waits for the worker to connect and authenticate; stops it on any failure.
  arrow::Result<std::unique_ptr<Worker>> Connect(Starting starting) {
    if (spec_.transport != "uds") return ConnectGrpcWorker(std::move(starting));
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

  // Connects to the next remote worker (round robin) and checks that it
  // answers and accepts the secret.
  arrow::Result<std::unique_ptr<Worker>> ConnectRemote() {
    size_t index = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      index = next_remote_++ % spec_.remote_workers.size();
    }
    const RemoteWorker& remote = spec_.remote_workers[index];
    transport::grpc_transport::GrpcTarget target{remote.endpoint, remote.secret, ""};
    if (!remote.tls_root_certificates_file.empty()) {
      ARROW_ASSIGN_OR_RAISE(target.tls_root_certificates,
                            ReadFile(remote.tls_root_certificates_file));
    }
    auto pid = transport::grpc_transport::PingGrpcWorker(target, spec_.start_timeout);
    if (!pid.ok()) {
      return pid.status().WithMessage("remote worker at ", remote.endpoint,
                                      " does not answer: ", pid.status().message());
    }
    ARROW_ASSIGN_OR_RAISE(auto connection, transport::grpc_transport::ConnectGrpc(target));
    std::string id;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      id = "r" + std::to_string(++workers_started_);
    }
    return std::make_unique<Worker>(id, nullptr, std::move(connection), spec_);
  }

  // Waits until the gRPC worker answers a heartbeat with our secret, then
  // checks that it is the process we started.
  arrow::Result<std::unique_ptr<Worker>> ConnectGrpcWorker(Starting starting) {
    transport::grpc_transport::GrpcTarget target{starting.endpoint, starting.secret, ""};
    if (!spec_.tls_root_certificates_file.empty()) {
      ARROW_ASSIGN_OR_RAISE(target.tls_root_certificates,
                            ReadFile(spec_.tls_root_certificates_file));
    }
    const std::string who =
        "worker " + starting.id + " (pid " + std::to_string(starting.process->pid()) + ")";
    const io::Deadline deadline = io::DeadlineIn(spec_.start_timeout);
    arrow::Status last = arrow::Status::OK();
    while (true) {
      auto pid = transport::grpc_transport::PingGrpcWorker(target, std::chrono::milliseconds(500));
      if (pid.ok() && static_cast<pid_t>(*pid) == starting.process->pid()) break;
      if (pid.ok()) {
        return arrow::Status::IOError(starting.endpoint, " is served by pid ", *pid, ", not by ",
                                      who, "; another process took the endpoint");
      }
      last = pid.status();
      if (auto status = starting.process->TryWait()) {
        return arrow::Status::IOError(who, " ", status->ToString(), " before it served ",
                                      starting.endpoint, Output(*starting.process), Hint());
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        starting.process->Terminate(spec_.stop_grace);
        return arrow::Status::IOError(who, " did not serve ", starting.endpoint, " within ",
                                      spec_.start_timeout.count(), " ms and was stopped (",
                                      last.message(), ")", Output(*starting.process), Hint());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ARROW_ASSIGN_OR_RAISE(auto connection, transport::grpc_transport::ConnectGrpc(target));
    return std::make_unique<Worker>(starting.id, std::move(starting.process), std::move(connection),
                                    spec_);
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
  size_t next_remote_ = 0;
};

}  // namespace

std::vector<std::string> PythonWorkerCommand(const std::string& python) {
  return {python, "-m", "quiver.worker"};
}

WorkerDispatcher::~WorkerDispatcher() = default;

arrow::Result<std::unique_ptr<WorkerDispatcher>> WorkerDispatcher::Make(WorkerSpec spec) {
  if (spec.command.empty() && spec.remote_workers.empty()) {
    return arrow::Status::Invalid("WorkerSpec needs a command or remote workers");
  }
  if (spec.transport != "uds" && spec.transport != "grpc+unix" && spec.transport != "grpc+tcp") {
    return arrow::Status::Invalid("unknown transport '", spec.transport,
                                  "' (uds, grpc+unix or grpc+tcp)");
  }
  ARROW_ASSIGN_OR_RAISE(std::string directory, MakePrivateDirectory());
  return std::make_unique<WorkerDispatcherImpl>(std::move(spec), std::move(directory));
}

}  // namespace quiver::worker
