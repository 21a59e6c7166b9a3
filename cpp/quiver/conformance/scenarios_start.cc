// How a worker takes its command line and its secret (docs/protocol.md §1):
// the kit starts these workers by hand, with what an engine never sends (a
// secret with a trailing newline, an empty one, an unknown option) or sends
// another way (`--name=value`), and checks that the worker starts, or exits 2.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "quiver/conformance/kit_transport.h"
#include "quiver/conformance/probe.h"
#include "quiver/conformance/scenarios.h"
#include "quiver/io/deadline.h"
#include "quiver/transport/registry.h"
#include "quiver/worker/child_process.h"

namespace quiver::conformance {
namespace {

// The secret hand-started workers are given: 64 lowercase hexadecimal characters.
const std::string kSecret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// What a transport sees of a worker the kit started by hand.
class HandProcess : public transport::WorkerProcess {
 public:
  HandProcess(std::string id, worker::ChildProcess* process)
      : id_(std::move(id)), process_(process) {}
  pid_t pid() const override { return process_->pid(); }
  std::string Describe() const override {
    return "worker " + id_ + " (pid " + std::to_string(process_->pid()) + ")";
  }
  std::string DescribeFailure() override {
    auto status = process_->WaitFor(std::chrono::milliseconds(500));
    return Describe() + (status ? " " + status->ToString() : " is still running") +
           "; its log ends:\n" + process_->log().LastLines(5);
  }

 private:
  std::string id_;
  worker::ChildProcess* process_;
};

// A worker started by hand, and how its start went: reached (connection set)
// or ended (exit set) or refused by the transport's handshake (refused set).
struct HandStart {
  std::unique_ptr<worker::ChildProcess> process;
  std::unique_ptr<transport::Connection> connection;
  std::shared_ptr<StartedWorker> record;
  std::optional<worker::ExitStatus> exit;
  std::optional<arrow::Status> refused;
  std::string log_tail() const { return "\n" + process->log().LastLines(5); }
};

arrow::Result<io::UniqueFd> PipeHolding(const std::string& bytes) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return arrow::Status::IOError("cannot make a pipe: ", std::strerror(errno));
  }
  io::UniqueFd read_end(fds[0]);
  io::UniqueFd write_end(fds[1]);
  if (!bytes.empty() &&
      ::write(write_end.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    return arrow::Status::IOError("cannot write to a pipe: ", std::strerror(errno));
  }
  return read_end;
}

/// Starts the worker command over the probe's transport with `secret_bytes` in
/// its secret pipe and the engine's arguments passed through `edit`, then waits
/// until the worker is reached (proving kSecret), refused or ended.
arrow::Result<HandStart> StartByHand(
    Probe& probe, const std::string& id, const std::string& secret_bytes,
    const std::function<std::vector<std::string>(std::vector<std::string>)>& edit) {
  ARROW_ASSIGN_OR_RAISE(auto name, KitTransport(probe.transport()));
  ARROW_ASSIGN_OR_RAISE(auto transport, transport::FindTransport(name));
  transport::EndpointOptions options;
  options.worker_id = id;
  options.private_directory = probe.dispatcher().private_directory();
  options.limits = protocol::FramingLimits{int64_t{64} << 20, int64_t{1} << 30};
  ARROW_ASSIGN_OR_RAISE(auto endpoint, transport->Prepare(options));
  std::vector<std::string> engine_arguments = endpoint->worker_arguments();
  engine_arguments.insert(engine_arguments.end(),
                          {"--id", id, "--connection", endpoint->endpoint()});
  std::vector<std::string> argv = probe.options().command;
  for (auto& argument : edit(std::move(engine_arguments))) argv.push_back(std::move(argument));
  ARROW_ASSIGN_OR_RAISE(io::UniqueFd pipe, PipeHolding(secret_bytes));
  HandStart start;
  ARROW_ASSIGN_OR_RAISE(
      start.process,
      worker::ChildProcess::Spawn(argv, {{"QUIVER_WORKER_SECRET_FD", "3"}}, 1 << 20, pipe.get()));
  pipe.Reset();
  HandProcess process(id, start.process.get());
  const io::Deadline deadline = io::DeadlineIn(probe.options().timeout);
  while (true) {
    const io::Deadline step = std::min(deadline, io::DeadlineIn(std::chrono::milliseconds(200)));
    auto accepted = endpoint->Accept(process, kSecret, step, deadline);
    if (!accepted.ok()) {
      start.refused = accepted.status();
      return start;
    }
    if (*accepted != nullptr) {
      start.connection = std::move(*accepted);
      start.record = FindStartedWorker(start.process->pid());
      ForgetStartedWorker(start.process->pid());
      return start;
    }
    if ((start.exit = start.process->TryWait())) return start;
    if (std::chrono::steady_clock::now() >= deadline) {
      return Violation("§1", "a worker started by hand (" + id +
                                 ") was neither reachable nor ended within the timeout");
    }
  }
}

std::vector<std::string> Unchanged(std::vector<std::string> arguments) { return arguments; }

// Expects the worker to be reached with kSecret (uds: its Hello carries it),
// then closes it as an engine does and expects exit status 0.
arrow::Status ExpectServes(Probe& probe, HandStart& start, const std::string& context) {
  if (start.exit) {
    return Violation("§1", context + ": the worker " + start.exit->ToString() +
                               " instead of starting; its log ends: " + start.log_tail());
  }
  if (start.refused) {
    return Violation(
        "§1", context + ": the worker did not accept the secret: " + start.refused->message());
  }
  if (start.record != nullptr && start.record->first_message) {
    const auto& first = *start.record->first_message;
    if (!first.has_hello() || first.hello().secret() != kSecret) {
      return Violation("§1", context + ": the Hello does not carry the secret's 64 characters (" +
                                 first.ShortDebugString().substr(0, 200) + ")");
    }
  }
  start.connection->Close(io::DeadlineIn(std::chrono::milliseconds(5000)));
  auto status = start.process->WaitFor(probe.options().timeout);
  if (!status || status->signaled || status->code != 0) {
    return Violation("§2", context + ": closed as an engine closes a worker, it " +
                               (status ? status->ToString() : std::string("did not exit")) +
                               ", expected exit status 0");
  }
  return arrow::Status::OK();
}

// Expects the worker to exit with status 2 before it can be reached.
arrow::Status ExpectUsageExit(HandStart& start, const std::string& context) {
  if (start.exit && !start.exit->signaled && start.exit->code == 2) return arrow::Status::OK();
  const std::string what = start.exit ? start.exit->ToString()
                           : start.connection != nullptr
                               ? std::string("started and answered")
                               : "was refused by the engine (" + start.refused->message() + ")";
  return Violation("§1", context + ": the worker " + what + ", expected exit status 2 first");
}

arrow::Status TrailingNewline(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto start, StartByHand(probe, "nl", kSecret + "\n", Unchanged));
  return ExpectServes(probe, start, "a secret pipe holding the secret and a newline");
}

arrow::Status EmptySecret(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto start, StartByHand(probe, "empty", "", Unchanged));
  return ExpectUsageExit(start, "an empty secret pipe");
}

arrow::Status UnknownOption(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto start,
                        StartByHand(probe, "unknown", kSecret, [](std::vector<std::string> args) {
                          args.insert(args.begin(), {"--no-such-option", "1"});
                          return args;
                        }));
  return ExpectUsageExit(start, "an unknown option, --no-such-option 1");
}

arrow::Status NameEqualsValue(Probe& probe) {
  ARROW_ASSIGN_OR_RAISE(auto start,
                        StartByHand(probe, "eq", kSecret, [](std::vector<std::string> args) {
                          std::vector<std::string> joined;
                          for (size_t i = 0; i + 1 < args.size(); i += 2) {
                            joined.push_back(args[i] + "=" + args[i + 1]);
                          }
                          return joined;
                        }));
  ARROW_RETURN_NOT_OK(ExpectServes(probe, start, "options given as --name=value"));
  if (start.record != nullptr && start.record->first_message &&
      start.record->first_message->hello().worker_id() != "eq") {
    return Violation("§1", "with --id=eq the Hello says worker_id '" +
                               start.record->first_message->hello().worker_id() + "'");
  }
  return arrow::Status::OK();
}

}  // namespace

std::vector<Scenario> StartScenarios() {
  return {
      {"secret-with-trailing-newline", "§1", On::kEvery, TrailingNewline},
      {"empty-secret-exits-2", "§1", On::kEvery, EmptySecret},
      {"unknown-option-exits-2", "§1", On::kEvery, UnknownOption},
      {"options-as-name-equals-value", "§1", On::kEvery, NameEqualsValue},
  };
}

}  // namespace quiver::conformance
