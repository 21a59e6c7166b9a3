#pragma once

// The command line an engine starts a worker with (docs/protocol.md, section 1):
//   WORKER --id ID --connection unix:PATH | shm:PATH
//   WORKER --transport grpc --id ID --connection grpc+unix:PATH | grpc+tcp:HOST:PORT
//          [--tls-cert FILE --tls-key FILE] [--log-level debug|info|warning|error]
//   WORKER --dialect spark --id ID --connection PATH | PORT   (docs/spark-protocol.md)
// the same flags as `python -m quiver.worker`.

#include <string>
#include <vector>

#include <arrow/result.h>

#include "quiver/sdk/log.h"

namespace quiver::sdk {

/// Exit status after Shutdown, SIGTERM/SIGINT, or the engine closing the connection.
inline constexpr int kExitOk = 0;
/// Exit status when the connection breaks, a bad frame arrives, or an endpoint cannot be bound.
inline constexpr int kExitConnectionLost = 1;
/// Exit status after a usage error (bad flags, no secret, a bad endpoint).
inline constexpr int kExitUsage = 2;

/// The parsed command line.
struct WorkerOptions {
  std::string id;
  std::string connection;
  /// "uds" (connect to the engine) or "grpc" (serve the UdfWorker service).
  std::string transport = "uds";
  /// "quiver" (quiver.v1) or "spark" (Spark's UdfWorker protocol, over gRPC only).
  std::string dialect = "quiver";
  std::string tls_cert_file;
  std::string tls_key_file;
  LogLevel log_level = LogLevel::kInfo;
};

/// Returns the usage text printed for --help and after a usage error.
std::string Usage(const std::string& program);

/// Parses `arguments` (without the program name); flags take their value as the
/// next argument or after '='. Fails with Invalid naming the bad flag.
arrow::Result<WorkerOptions> ParseCommandLine(const std::vector<std::string>& arguments);

}  // namespace quiver::sdk
