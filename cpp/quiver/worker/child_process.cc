#include "quiver/worker/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

extern char** environ;

namespace quiver::worker {
namespace {

// Joins the engine's environment with `overrides` (which win) as "KEY=VALUE" strings.
std::vector<std::string> MergedEnvironment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> merged;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    const auto key = text.substr(0, text.find('='));
    if (overrides.count(std::string(key)) == 0) merged.emplace_back(text);
  }
  for (const auto& [key, value] : overrides) merged.push_back(key + "=" + value);
  return merged;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (auto& text : strings) pointers.push_back(text.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Owns the spawn attributes and file actions of one posix_spawn call.
struct SpawnSetup {
  posix_spawnattr_t attributes;
  posix_spawn_file_actions_t actions;

  explicit SpawnSetup(int output_fd) {
    posix_spawnattr_init(&attributes);
    posix_spawn_file_actions_init(&actions);
    // Own process group, so stopping a worker also stops what it started.
    posix_spawnattr_setpgroup(&attributes, 0);
    // Default dispositions and an empty mask, whatever the engine changed for itself.
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int signal_number : {SIGPIPE, SIGTERM, SIGINT, SIGCHLD})
      sigaddset(&defaults, signal_number);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    sigset_t empty;
    sigemptyset(&empty);
    posix_spawnattr_setsigmask(&attributes, &empty);
    posix_spawnattr_setflags(
        &attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, output_fd, 1);
    posix_spawn_file_actions_adddup2(&actions, output_fd, 2);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
};

const char* SignalName(int signal_number) {
  switch (signal_number) {
    case SIGKILL:
      return "SIGKILL";
    case SIGTERM:
      return "SIGTERM";
    case SIGSEGV:
      return "SIGSEGV";
    case SIGABRT:
      return "SIGABRT";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    case SIGINT:
      return "SIGINT";
    case SIGPIPE:
      return "SIGPIPE";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "signal";
  }
}

}  // namespace

std::string ExitStatus::ToString() const {
  if (signaled) {
    return "was killed by signal " + std::to_string(code) + " (" + SignalName(code) + ")";
  }
  return "exited with status " + std::to_string(code);
}

arrow::Result<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(
    const std::vector<std::string>& argv, const std::map<std::string, std::string>& environment,
    int64_t log_capacity_bytes) {
  if (argv.empty()) return arrow::Status::Invalid("worker command is empty");
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return arrow::Status::IOError("pipe: ", std::strerror(errno));
  }
  io::UniqueFd read_end(pipe_fds[0]);
  io::UniqueFd write_end(pipe_fds[1]);
  std::vector<std::string> arguments = argv;
  std::vector<std::string> variables = MergedEnvironment(environment);
  auto argument_pointers = Pointers(arguments);
  auto variable_pointers = Pointers(variables);
  SpawnSetup setup(write_end.get());
  pid_t pid = 0;
  const int error = ::posix_spawnp(&pid, arguments[0].c_str(), &setup.actions, &setup.attributes,
                                   argument_pointers.data(), variable_pointers.data());
  if (error != 0) {
    return arrow::Status::IOError("cannot start worker command '", argv[0],
                                  "': ", std::strerror(error),
                                  "; check the program exists and is executable");
  }
  write_end.Reset();  // the child holds the only write end now
  return std::unique_ptr<ChildProcess>(
      new ChildProcess(pid, std::move(read_end), log_capacity_bytes));
}

ChildProcess::ChildProcess(pid_t pid, io::UniqueFd output, int64_t log_capacity_bytes)
    : pid_(pid),
      log_(std::make_unique<BoundedLog>(log_capacity_bytes)),
      output_(std::move(output)) {
  output_reader_ = std::thread([this] { CollectOutput(); });
}

ChildProcess::~ChildProcess() {
  if (!exit_status_) Terminate(std::chrono::milliseconds(1000));
  if (output_reader_.joinable()) output_reader_.join();
}

void ChildProcess::CollectOutput() {
  char buffer[8192];
  while (true) {
    pollfd entry{output_.get(), POLLIN, 0};
    const int ready = ::poll(&entry, 1, 100);
    if (ready < 0 && errno != EINTR) return;
    if (ready <= 0) {
      // A grandchild may keep the pipe open after the worker is gone: stop
      // listening once the worker was reaped and nothing more is pending.
      if (reaped_) return;
      continue;
    }
    const ssize_t got = ::read(output_.get(), buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return;
    log_->Append(std::string_view(buffer, static_cast<size_t>(got)));
  }
}

void ChildProcess::Reap(int wait_status) {
  ExitStatus status;
  if (WIFSIGNALED(wait_status)) {
    status.signaled = true;
    status.code = WTERMSIG(wait_status);
  } else {
    status.code = WEXITSTATUS(wait_status);
  }
  exit_status_ = status;
  reaped_ = true;
}

std::optional<ExitStatus> ChildProcess::TryWait() {
  if (exit_status_) return exit_status_;
  int wait_status = 0;
  if (::waitpid(pid_, &wait_status, WNOHANG) == pid_) Reap(wait_status);
  return exit_status_;
}

std::optional<ExitStatus> ChildProcess::WaitFor(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!TryWait() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return exit_status_;
}

ExitStatus ChildProcess::Terminate(std::chrono::milliseconds grace) {
  if (TryWait()) return *exit_status_;
  ::kill(-pid_, SIGTERM);
  if (WaitFor(grace)) return *exit_status_;
  ::kill(-pid_, SIGKILL);
  int wait_status = 0;
  while (::waitpid(pid_, &wait_status, 0) < 0 && errno == EINTR) {
  }
  Reap(wait_status);
  return *exit_status_;
}

}  // namespace quiver::worker
