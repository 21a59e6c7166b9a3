#include "quiver/worker/child_process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <utility>

#include "quiver/sandbox/sandbox_policy.h"

extern char** environ;

namespace quiver::worker {

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

namespace {

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (auto& text : strings) pointers.push_back(text.data());
  pointers.push_back(nullptr);
  return pointers;
}

}  // namespace

// Resolved before fork, where the child may only make async-signal-safe calls.
std::string ResolveProgram(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::string_view directories(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  while (true) {
    const size_t colon = directories.find(':');
    std::string directory(directories.substr(0, colon));
    const std::string candidate = (directory.empty() ? "." : directory) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) return program;  // execve reports ENOENT
    directories.remove_prefix(colon + 1);
  }
}

namespace {

// In the forked child, before exec: only async-signal-safe calls. Reports a
// failure as errno on `error_fd` (negated when entering the sandbox failed)
// and exits 127.
[[noreturn]] void BecomeWorker(const char* program, char* const* argv, char* const* envp,
                               int output_fd, int inherited_fd, int error_fd, pid_t parent,
                               const sandbox::PreparedSandbox* sandbox) {
  // Copies of the three descriptors above every one that is about to be
  // replaced: an engine started with stdin (or stdout) closed gets its pipes
  // as descriptors 0-3, which the dup2s below would overwrite before use. The
  // copies are close-on-exec.
  constexpr int kAboveReplaced = kInheritedFd + 1;
  error_fd = ::fcntl(error_fd, F_DUPFD_CLOEXEC, kAboveReplaced);
  if (error_fd < 0) ::_exit(127);
  auto fail = [error_fd]() {
    const int error = errno;
    (void)!::write(error_fd, &error, sizeof(error));
    ::_exit(127);
  };
  output_fd = ::fcntl(output_fd, F_DUPFD_CLOEXEC, kAboveReplaced);
  if (output_fd < 0) fail();
  if (inherited_fd >= 0) {
    inherited_fd = ::fcntl(inherited_fd, F_DUPFD_CLOEXEC, kAboveReplaced);
    if (inherited_fd < 0) fail();
  }
  // Own process group, so stopping a worker also stops what it started.
  if (::setpgid(0, 0) != 0) fail();
  // Die with the engine, even when it is killed by SIGKILL. The signal comes
  // when the engine's thread that forked ends: workers are forked on a thread
  // that lives as long as the process (SpawnThread).
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail();
  if (::getppid() != parent) ::_exit(127);  // the engine died before prctl
  // Default dispositions and an empty mask, whatever the engine changed for itself.
  for (int signal_number : {SIGPIPE, SIGTERM, SIGINT, SIGCHLD, SIGHUP}) {
    ::signal(signal_number, SIG_DFL);
  }
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  const int null_fd = ::open("/dev/null", O_RDONLY);  // may itself be 0: no O_CLOEXEC
  if (null_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(output_fd, 1) < 0 ||
      ::dup2(output_fd, 2) < 0) {
    fail();
  }
  // No descriptor of the engine reaches the worker but the ones it is given,
  // whether or not whoever opened it asked for close-on-exec. (dup2 clears
  // close-on-exec on the descriptor it makes.)
  if (inherited_fd >= 0 && ::dup2(inherited_fd, kInheritedFd) < 0) fail();
  const unsigned first_closed = inherited_fd >= 0 ? kInheritedFd + 1 : 3;
  if (::syscall(SYS_close_range, first_closed, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = static_cast<int>(first_closed); fd < 65536; ++fd)
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  // Last, so that nothing above runs under the syscall filter.
  if (sandbox != nullptr) {
    const int error = -sandbox->Enter();
    if (error != 0) {
      (void)!::write(error_fd, &error, sizeof(error));
      ::_exit(127);
    }
  }
  ::execve(program, argv, envp);
  fail();
  ::_exit(127);  // not reached: fail exits
}

// Runs tasks on one thread that lives as long as the process. PR_SET_PDEATHSIG
// fires when the *thread* that forked a child ends, so forking on whatever
// thread asks (a short-lived one in a thread pool) would kill healthy workers.
class SpawnThread {
 public:
  static SpawnThread& Get() {
    static SpawnThread* instance = new SpawnThread();  // never destroyed: outlives every caller
    return *instance;
  }

  // Runs `task` on the spawn thread and waits for it.
  void Run(const std::function<void()>& task) {
    std::unique_lock<std::mutex> lock(mutex_);
    tasks_.push_back(&task);
    const uint64_t ticket = ++submitted_;
    wake_.notify_all();
    done_.wait(lock, [&] { return finished_ >= ticket; });
  }

 private:
  SpawnThread() {
    std::thread([this] { Loop(); }).detach();
  }

  void Loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      wake_.wait(lock, [&] { return !tasks_.empty(); });
      const std::function<void()>* task = tasks_.front();
      tasks_.pop_front();
      lock.unlock();
      (*task)();
      lock.lock();
      ++finished_;
      done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::deque<const std::function<void()>*> tasks_;
  uint64_t submitted_ = 0;
  uint64_t finished_ = 0;
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
  std::string text =
      signaled ? "was killed by signal " + std::to_string(code) + " (" + SignalName(code) + ")"
               : "exited with status " + std::to_string(code);
  return cause.empty() ? text : text + ": " + cause;
}

arrow::Result<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(
    const std::vector<std::string>& argv, const std::map<std::string, std::string>& environment,
    int64_t log_capacity_bytes, int inherited_fd) {
  if (argv.empty()) return arrow::Status::Invalid("worker command is empty");
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return arrow::Status::IOError("pipe: ", std::strerror(errno));
  }
  io::UniqueFd read_end(pipe_fds[0]);
  io::UniqueFd write_end(pipe_fds[1]);
  // The child reports a failed exec here; a successful exec closes it.
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return arrow::Status::IOError("pipe: ", std::strerror(errno));
  }
  io::UniqueFd error_read(pipe_fds[0]);
  io::UniqueFd error_write(pipe_fds[1]);
  const std::string program = ResolveProgram(argv[0]);
  std::vector<std::string> arguments = argv;
  // A sandboxed worker (sandbox/sandbox_policy.h) gets its private directory
  // and the rules' summary in its environment.
  std::map<std::string, std::string> worker_environment = environment;
  std::unique_ptr<sandbox::PreparedSandbox> sandbox;
  if (sandbox::SandboxRequested(environment)) {
    std::vector<std::string> resolved = argv;
    resolved[0] = program;
    ARROW_ASSIGN_OR_RAISE(sandbox,
                          sandbox::PreparedSandbox::Prepare(resolved, &worker_environment));
  }
  std::vector<std::string> variables = MergedEnvironment(worker_environment);
  auto argument_pointers = Pointers(arguments);
  auto variable_pointers = Pointers(variables);
  const pid_t parent = ::getpid();
  pid_t pid = -1;
  int fork_error = 0;
  SpawnThread::Get().Run([&] {
    pid = ::fork();
    if (pid == 0) {
      BecomeWorker(program.c_str(), argument_pointers.data(), variable_pointers.data(),
                   write_end.get(), inherited_fd, error_write.get(), parent, sandbox.get());
    }
    fork_error = errno;
  });
  if (pid < 0) return arrow::Status::IOError("fork: ", std::strerror(fork_error));
  write_end.Reset();  // the child holds the only write end now
  error_write.Reset();
  int exec_error = 0;
  ssize_t got = 0;
  do {
    got = ::read(error_read.get(), &exec_error, sizeof(exec_error));
  } while (got < 0 && errno == EINTR);
  if (got > 0) {
    int wait_status = 0;
    while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
    }
    if (exec_error < 0) {
      return arrow::Status::IOError("cannot enter the sandbox for worker command '", argv[0],
                                    "': ", std::strerror(-exec_error),
                                    "; the kernel refused Landlock or seccomp: run without the "
                                    "sandbox, or check that no outer seccomp policy forbids them");
    }
    return arrow::Status::IOError("cannot start worker command '", argv[0],
                                  "': ", std::strerror(exec_error),
                                  "; check the program exists and is executable");
  }
  std::unique_ptr<ChildProcess> process(
      new ChildProcess(pid, std::move(read_end), log_capacity_bytes));
  process->sandbox_ = std::move(sandbox);
  return process;
}

ChildProcess::ChildProcess(pid_t pid, io::UniqueFd output, int64_t log_capacity_bytes)
    : pid_(pid),
      log_(std::make_unique<BoundedLog>(log_capacity_bytes)),
      output_(std::move(output)) {
  output_reader_ = std::thread([this] { CollectOutput(); });
}

std::unique_ptr<ChildProcess> ChildProcess::Adopt(pid_t pid, io::UniqueFd output,
                                                  int64_t log_capacity_bytes,
                                                  io::UniqueFd exit_channel) {
  std::unique_ptr<ChildProcess> process(
      new ChildProcess(pid, std::move(output), log_capacity_bytes));
  process->adopted_ = true;
  process->exit_channel_ = std::move(exit_channel);
  return process;
}

bool ChildProcess::ReadExitReport(int timeout_ms) {
  std::lock_guard<std::mutex> lock(exit_mutex_);
  if (exit_status_) return true;
  while (exit_report_.find('\n') == std::string::npos) {
    pollfd entry{exit_channel_.get(), POLLIN, 0};
    const int ready = ::poll(&entry, 1, timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return false;
    char buffer[64];
    const ssize_t got = ready < 0 ? -1 : ::read(exit_channel_.get(), buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0 || exit_report_.size() > 64) {
      // The fork server died (and its workers with it, by PR_SET_PDEATHSIG) or
      // sent nonsense: the process is gone or about to be.
      exit_report_ = "signal " + std::to_string(SIGKILL) + "\n";
      server_lost_ = true;
      break;
    }
    exit_report_.append(buffer, static_cast<size_t>(got));
  }
  ExitStatus status;
  int value = SIGKILL;
  const std::string line = exit_report_.substr(0, exit_report_.find('\n'));
  if (std::sscanf(line.c_str(), "exit %d", &value) == 1 && value >= 0 && value < 256) {
    status.code = value;
  } else {
    status.signaled = true;
    status.code = std::sscanf(line.c_str(), "signal %d", &value) == 1 && value > 0 && value < 65
                      ? value
                      : SIGKILL;
  }
  if (server_lost_) {
    status.cause =
        "its fork server (python -m quiver.forkserver) ended without reporting the worker's "
        "exit; the workers it forked die with it. Was it killed? --no-daemon starts workers "
        "without it";
  }
  exit_status_ = status;
  reaped_ = true;
  exit_channel_.Reset();  // the fork server reaps the zombie now
  return true;
}

ChildProcess::~ChildProcess() {
  if (!exit_status_) Terminate(std::chrono::milliseconds(1000));
  if (output_reader_.joinable()) output_reader_.join();
}

void ChildProcess::CollectOutput() {
  // Non-blocking, so that CatchUpOutput may take what poll saw first.
  ::fcntl(output_.get(), F_SETFL, ::fcntl(output_.get(), F_GETFL) | O_NONBLOCK);
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
    if (!ReadPendingOutput()) return;
  }
}

bool ChildProcess::ReadPendingOutput() {
  std::lock_guard<std::mutex> lock(output_mutex_);
  char buffer[8192];
  while (true) {
    const ssize_t got = ::read(output_.get(), buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && errno == EAGAIN) return true;
    if (got <= 0) return false;  // end of file, or the pipe failed
    log_->Append(std::string_view(buffer, static_cast<size_t>(got)));
  }
}

void ChildProcess::CatchUpOutput() { ReadPendingOutput(); }

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
  // The pid may be reused from now on: the watch must not look at it again.
  if (memory_cap_ != nullptr) memory_cap_->Stop();
}

void ChildProcess::CapMemory(int64_t limit_bytes) {
  memory_cap_ = std::make_unique<MemoryCap>(pid_, limit_bytes);
}

std::optional<ExitStatus> ChildProcess::TryWait() {
  if (exit_status_) return exit_status_;
  if (adopted_) {
    ReadExitReport(0);
    return exit_status_;
  }
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

void ChildProcess::Signal(int signal_number) {
  if (!TryWait()) ::kill(-pid_, signal_number);
}

ExitStatus ChildProcess::Terminate(std::chrono::milliseconds grace) {
  if (TryWait()) return *exit_status_;
  ::kill(-pid_, SIGTERM);
  if (WaitFor(grace)) return *exit_status_;
  ::kill(-pid_, SIGKILL);
  if (adopted_) {
    ReadExitReport(-1);
    return *exit_status_;
  }
  int wait_status = 0;
  while (::waitpid(pid_, &wait_status, 0) < 0 && errno == EINTR) {
  }
  Reap(wait_status);
  return *exit_status_;
}

}  // namespace quiver::worker
