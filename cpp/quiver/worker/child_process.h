#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arrow/result.h>

#include "quiver/io/unique_fd.h"
#include "quiver/sandbox/sandbox_policy.h"
#include "quiver/worker/bounded_log.h"
#include "quiver/worker/memory_cap.h"

namespace quiver::worker {

/// How a process ended.
struct ExitStatus {
  bool signaled = false;
  int code = 0;       // exit status, or the signal number when signaled
  std::string cause;  // what is known beyond the status, e.g. that the fork server died

  /// Returns e.g. "exited with status 1" or "was killed by signal 9 (SIGKILL)",
  /// followed by ": CAUSE" when there is one.
  std::string ToString() const;
};

/// The descriptor number at which a child gets the `inherited_fd` of Spawn.
inline constexpr int kInheritedFd = 3;

/// Returns the engine's environment joined with `overrides` (which win), as
/// "KEY=VALUE" strings.
std::vector<std::string> MergedEnvironment(const std::map<std::string, std::string>& overrides);

/// Returns the path execve runs for `program`: itself when it holds a '/', else
/// the first executable match on PATH (else `program`, for execve to report).
std::string ResolveProgram(const std::string& program);

/// \brief A child process whose stdout and stderr go to a BoundedLog.
///
/// Move-only owner: destroying it stops the process (SIGTERM, then SIGKILL)
/// and reaps it, so no child outlives its owner or stays a zombie.
class ChildProcess {
 public:
  /// Starts `argv` with the engine's environment plus `environment`, in its own
  /// process group. The child inherits no descriptor of the engine but stdin
  /// (/dev/null), stdout and stderr (the log) and, when `inherited_fd` >= 0,
  /// that one as descriptor kInheritedFd. When `environment` asks for the
  /// sandbox (QUIVER_SANDBOX, sandbox/sandbox_policy.h), the child enters it
  /// right before exec, or is not started. It is killed when the engine dies,
  /// even by SIGKILL (PR_SET_PDEATHSIG). Fails with the reason when the program
  /// cannot be started.
  static arrow::Result<std::unique_ptr<ChildProcess>> Spawn(
      const std::vector<std::string>& argv, const std::map<std::string, std::string>& environment,
      int64_t log_capacity_bytes, int inherited_fd = -1);

  /// Takes over a process another process forked for the engine (the fork
  /// server, fork_server.h): the engine cannot waitpid it, so its end comes as
  /// one line on `exit_channel`, "exit N" or "signal N" (end of file without
  /// one counts as SIGKILL). Closing the channel lets the forker reap it, so the
  /// pid is not reused while this object may still signal it. `output` is the
  /// read end of the process's stdout and stderr.
  static std::unique_ptr<ChildProcess> Adopt(pid_t pid, io::UniqueFd output,
                                             int64_t log_capacity_bytes, io::UniqueFd exit_channel);

  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  /// Returns true for a process taken over with Adopt (forked by the fork server).
  bool adopted() const { return adopted_; }
  const BoundedLog& log() const { return *log_; }
  /// Sends the process's output to `sink` too (see BoundedLog::SetSink).
  void SetLogSink(std::shared_ptr<LogSink> sink) { log_->SetSink(std::move(sink)); }
  /// Takes what the process wrote and the log has not read yet: after it,
  /// everything written before a message the worker sent since is in the log.
  void CatchUpOutput();
  BoundedLog& log() { return *log_; }

  /// Returns the exit status if the process ended, reaping it; never blocks.
  std::optional<ExitStatus> TryWait();

  /// Waits up to `timeout` for the process to end by itself.
  std::optional<ExitStatus> WaitFor(std::chrono::milliseconds timeout);

  /// Stops the process: SIGTERM, then SIGKILL after `grace`; reaps it.
  ExitStatus Terminate(std::chrono::milliseconds grace);

  /// Sends `signal_number` to the process group unless the process was reaped.
  void Signal(int signal_number);

  /// Stops the process (SIGKILL) once its resident memory is over
  /// `limit_bytes` (see MemoryCap); call once, right after Spawn.
  void CapMemory(int64_t limit_bytes);
  /// Returns the memory cap, or null when the process has none.
  const MemoryCap* memory_cap() const { return memory_cap_.get(); }

 private:
  ChildProcess(pid_t pid, io::UniqueFd output, int64_t log_capacity_bytes);
  void CollectOutput();
  // Reads all the output pending now; returns false at end of file.
  bool ReadPendingOutput();
  void Reap(int wait_status);
  // For an adopted process: reads its exit line, waiting up to `timeout_ms`
  // (-1: for ever); returns true once the exit status is known.
  bool ReadExitReport(int timeout_ms);

  pid_t pid_;
  std::optional<ExitStatus> exit_status_;
  std::atomic<bool> reaped_{false};  // read by the output thread
  std::unique_ptr<BoundedLog> log_;
  io::UniqueFd output_;
  std::mutex output_mutex_;  // one reader of output_ at a time
  std::thread output_reader_;
  bool adopted_ = false;
  bool server_lost_ = false;  // adopted: the fork server closed without an exit line
  std::mutex exit_mutex_;     // guards the exit channel of an adopted process
  io::UniqueFd exit_channel_;
  std::string exit_report_;
  // Its private directory goes once the process is gone (the destructor's body).
  std::unique_ptr<sandbox::PreparedSandbox> sandbox_;
  std::unique_ptr<MemoryCap> memory_cap_;  // last: its watch ends first
};

}  // namespace quiver::worker
