#pragma once

// The sandbox tier (docs/security.md): a worker that runs without network but
// its connection to the engine, reads only the system's libraries, its
// program, its UDFs' files and the paths it is given, writes only in a fresh
// private temporary directory, and runs under a syscall filter.
//
// A run asks for it through the worker's environment (QUIVER_SANDBOX), the one
// channel that both `quiver run` and quiver.Session already hand to every
// worker, and that the worker reads too, to name the rule a UDF broke.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

#include "quiver/io/unique_fd.h"
#include "quiver/sandbox/seccomp_filter.h"

namespace quiver::sandbox {

/// In a worker's environment: sandbox it ("1"). The engine then sets it to the
/// rules' summary the worker shows when a UDF breaks one.
inline constexpr char kSandboxVariable[] = "QUIVER_SANDBOX";
/// In a worker's environment: more paths it may read, ':'-separated.
inline constexpr char kReadPathsVariable[] = "QUIVER_SANDBOX_READ";
/// The oldest Landlock ABI the sandbox accepts: 4 has the TCP port rules.
inline constexpr int kMinimumLandlockAbi = 4;

/// Returns OK when this machine can sandbox workers, else why not and what to
/// do (the run is refused: never run unsandboxed when asked for a sandbox).
arrow::Status CheckSandboxSupported();

/// Returns true when `environment` (a worker's extra environment) asks for the sandbox.
bool SandboxRequested(const std::map<std::string, std::string>& environment);

/// \brief A sandbox made ready in the engine for one worker: its Landlock
/// ruleset, its seccomp filter and its private temporary directory (removed
/// with this object, once the worker is gone).
class PreparedSandbox {
 public:
  /// Prepares the sandbox of the worker `argv` (its program is made readable
  /// and executable; a `--connection grpc+tcp:HOST:PORT` argument lets it bind
  /// PORT, a `grpc+unix:PATH` one create its socket in PATH's directory) and
  /// adds to `environment` the private directory as TMPDIR, TMP and TEMP and
  /// the rules' summary as QUIVER_SANDBOX.
  static arrow::Result<std::unique_ptr<PreparedSandbox>> Prepare(
      const std::vector<std::string>& argv, std::map<std::string, std::string>* environment);

  ~PreparedSandbox();
  PreparedSandbox(const PreparedSandbox&) = delete;
  PreparedSandbox& operator=(const PreparedSandbox&) = delete;

  /// In the child, after fork: enters the sandbox. Async-signal-safe; returns
  /// 0 or the errno.
  int Enter() const noexcept;

  const std::string& private_directory() const { return private_directory_; }

 private:
  PreparedSandbox(io::UniqueFd ruleset, bool allow_tcp, std::string private_directory);

  io::UniqueFd ruleset_;
  SeccompFilter filter_;
  std::string private_directory_;
};

}  // namespace quiver::sandbox
