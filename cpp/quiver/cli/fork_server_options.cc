#include "quiver/cli/fork_server_options.h"

#include <cstdlib>
#include <string>

#include "quiver/worker/worker_dispatcher.h"

namespace quiver::cli {

void AddForkServerOptions(CLI::App* run, RunOptions& options) {
  run->add_flag("--no-daemon", options.no_daemon,
                "Start every Python worker with fork/exec, not through the per-user fork "
                "server (also: QUIVER_NO_DAEMON=1)");
}

void ApplyForkServerOptions(const RunOptions& options, const std::vector<std::string>& command,
                            worker::WorkerSpec* spec) {
  if (options.no_daemon || command != worker::PythonWorkerCommand(options.python)) return;
  const char* opt_out = std::getenv("QUIVER_NO_DAEMON");
  if (opt_out != nullptr && *opt_out != '\0' && std::string(opt_out) != "0") return;
  spec->launcher = worker::LauncherKind::kForkServer;
  spec->fork_server.python = options.python;
  if (const char* idle = std::getenv("QUIVER_FORKSERVER_IDLE_TIMEOUT")) {
    char* end = nullptr;
    const double seconds = std::strtod(idle, &end);
    if (end != idle && seconds > 0) spec->fork_server.idle_timeout_seconds = seconds;
  }
}

}  // namespace quiver::cli
