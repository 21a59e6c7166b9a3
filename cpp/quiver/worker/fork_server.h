#pragma once

// The engine's side of the per-user fork server (python -m quiver.forkserver):
// a Python process that has imported pyarrow and pandas and forks a worker per
// request, so that a worker starts in milliseconds instead of paying the
// interpreter's imports. The request format is in docs/protocol.md ("Fork
// server"); why a fork server, and what was turned down, in docs/decisions.md.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "quiver/worker/child_process.h"
#include "quiver/worker/worker_spec.h"

namespace quiver::worker {

/// Why the fork server did not start a worker: the detail of every status
/// SpawnThroughForkServer returns (ForkServerFailureOf). The caller then
/// fork/execs the worker; only kFailed is worth telling the user.
enum class ForkServerFailure {
  /// No server was running: one was started for later runs.
  kNotRunning,
  /// The server's quiver files changed since it started (an upgrade, an
  /// edit): it stops listening, and the next run starts a new one.
  kRestarting,
  /// The server cannot be used: its socket path is too long, it runs as
  /// another user, it refused the request or did not answer, ...
  kFailed,
};

/// Returns the ForkServerFailure that `status` carries; kFailed for a status
/// without one.
ForkServerFailure ForkServerFailureOf(const arrow::Status& status);

/// Returns the fork server's private directory, as an absolute path (a relative
/// one is resolved against the current directory): `requested`, else
/// $QUIVER_FORKSERVER_DIR, else $XDG_RUNTIME_DIR/quiver, else /tmp/quiver-UID.
/// Creates it (mode 0700) when missing. Fails when it is not a directory of
/// this user with mode 0700: another user could then reach or replace the socket.
arrow::Result<std::string> ForkServerDirectory(const std::string& requested);

/// Returns the socket of the server for `python` with `environment` ("KEY=VALUE"
/// strings) in `directory`: servers differ by interpreter and by the variables
/// that change what Python imports (PYTHONPATH, ...), so a run never gets a
/// worker set up for another.
std::string ForkServerSocket(const std::string& directory, const std::string& python,
                             const std::vector<std::string>& environment);

/// \brief Asks the user's fork server to fork a worker running
/// `python -m quiver.worker ARGUMENTS` with the engine's environment plus
/// `environment`, in the engine's current directory; its stdout and stderr go
/// to the returned process's log, and `inherited_fd` (if >= 0) becomes its
/// descriptor kInheritedFd, as with ChildProcess::Spawn.
///
/// The worker is not the engine's child: its exit comes over the request's
/// connection (ChildProcess::Adopt), and the server kills it when that
/// connection closes first (the engine died). When no server runs, starts one
/// detached for later runs and fails (kNotRunning): the caller then fork/execs
/// the worker. Every failure carries its ForkServerFailure.
arrow::Result<std::unique_ptr<ChildProcess>> SpawnThroughForkServer(
    const ForkServerSpec& spec, const std::vector<std::string>& arguments,
    const std::map<std::string, std::string>& environment, int64_t log_capacity_bytes,
    int inherited_fd);

}  // namespace quiver::worker
