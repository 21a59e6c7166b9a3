#pragma once

// `quiver run --no-daemon` and the environment that tunes the fork server
// (worker/fork_server.h): QUIVER_NO_DAEMON, QUIVER_FORKSERVER_DIR,
// QUIVER_FORKSERVER_IDLE_TIMEOUT.

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "quiver/cli/run_command.h"
#include "quiver/worker/worker_spec.h"

namespace quiver::cli {

/// Adds --no-daemon to `run`, bound to options.no_daemon.
void AddForkServerOptions(CLI::App* run, RunOptions& options);

/// Declares the fork server as the launcher of `spec` (LauncherKind::kForkServer)
/// when `command` is the built-in Python runtime's worker and neither --no-daemon
/// nor QUIVER_NO_DAEMON (not "" or "0") opts out; QUIVER_FORKSERVER_IDLE_TIMEOUT
/// (seconds) sets the server's idle timeout.
void ApplyForkServerOptions(const RunOptions& options, const std::vector<std::string>& command,
                            worker::WorkerSpec* spec);

}  // namespace quiver::cli
