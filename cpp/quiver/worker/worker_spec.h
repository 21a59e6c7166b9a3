#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "quiver/transport/registry.h"

namespace quiver::worker {

/// A worker that is already running somewhere (a service), reached by endpoint
/// instead of started by the dispatcher.
struct RemoteWorker {
  /// "SCHEME:ADDRESS"; the scheme names the registered transport that reaches it.
  std::string endpoint;
  /// The secret the worker was started with.
  std::string secret;
  /// PEM root certificates file for TLS; empty for plaintext.
  std::string tls_root_certificates_file;
};

/// How the dispatcher starts a worker process (worker_launcher.h).
enum class LauncherKind {
  /// fork/exec of the spec's command: any worker program.
  kForkExec,
  /// A fork of the per-user Python fork server (ForkServerSpec), for quiver's
  /// Python worker: the command must be `PYTHON -m quiver.worker [ARG...]` with
  /// ForkServerSpec::python as PYTHON. Falls back to fork/exec whenever the
  /// server cannot start the worker.
  kForkServer,
};

/// The per-user fork server that forks Python workers from an interpreter that
/// has imported pyarrow and pandas already (fork_server.h, docs/decisions.md).
struct ForkServerSpec {
  /// The Python that runs the server, the one of the spec's `PYTHON -m
  /// quiver.worker` command. Empty: no server; workers are fork/exec'd whatever
  /// WorkerSpec::launcher says.
  std::string python;
  /// Private directory of the server's socket. Empty: $QUIVER_FORKSERVER_DIR,
  /// else $XDG_RUNTIME_DIR/quiver, else /tmp/quiver-UID.
  std::string directory;
  /// Seconds without a request or a running worker before the server exits.
  double idle_timeout_seconds = 300;
};

/// Returns the command that starts quiver's Python worker with `python` (the
/// only command the fork server runs).
inline std::vector<std::string> PythonWorkerCommand(const std::string& python) {
  return {python, "-m", "quiver.worker"};
}

/// How to start and manage workers of one kind.
struct WorkerSpec {
  /// Program and arguments; the dispatcher appends the transport's worker
  /// arguments and `--id ID --connection ENDPOINT`.
  std::vector<std::string> command;
  /// How the engine reaches its workers: the name of a registered transport
  /// (transport/registry.h lists the built-in ones).
  std::string transport = transport::kDefaultTransport;
  /// For transports with TLS: PEM certificate and key files given to the workers
  /// (they then serve TLS) and the root certificates the engine trusts. Empty: plaintext.
  std::string tls_certificate_file;
  std::string tls_key_file;
  std::string tls_root_certificates_file;
  /// When not empty, workers are not started: connections go to these running
  /// workers (round robin), and stopping a worker only closes its connection.
  std::vector<RemoteWorker> remote_workers;
  /// How worker processes start. kForkServer: through the user's fork server
  /// when it runs (one is started for later runs when it does not); any failure
  /// falls back to fork/exec.
  LauncherKind launcher = LauncherKind::kForkExec;
  /// The fork server of LauncherKind::kForkServer.
  ForkServerSpec fork_server;
  /// Extra environment variables for the worker (added to the engine's own).
  std::map<std::string, std::string> environment;
  /// Keep workers alive between runs and hand them out again.
  bool reuse = true;
  /// Most idle workers kept in the pool.
  int max_idle_workers = 8;
  /// Time a new worker has to connect and say Hello.
  std::chrono::milliseconds start_timeout{30000};
  /// Time a worker has to answer one batch (or Init, Finish, Cancel).
  std::chrono::milliseconds batch_timeout{60000};
  /// Time between SIGTERM and SIGKILL when stopping a worker.
  std::chrono::milliseconds stop_grace{2000};
  /// Bytes of each worker's stdout and stderr kept for error messages.
  int64_t log_capacity_bytes = 64 * 1024;
  /// When not empty, each started worker's stdout and stderr also go to a file
  /// of JSON lines in this directory (worker/log_sink.h), worker-ID-PID.jsonl.
  std::string log_dir;
  /// Share of batches (0 to 1) whose times are kept as spans of the run's
  /// trace (exec/run_metrics.h, BatchSpan); 0: none.
  double trace_batches = 0;
  /// Most resident memory (RSS) of each worker process, in bytes; a worker over
  /// it is stopped and its run fails naming the cap (worker/memory_cap.h).
  /// 0: no cap.
  int64_t memory_limit_bytes = 0;
  /// Largest frame accepted from a worker.
  int64_t max_message_bytes = int64_t{2} << 30;
};

}  // namespace quiver::worker
