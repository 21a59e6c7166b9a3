#pragma once

// The gRPC transport, worker side (docs/protocol.md, section 5): serve the
// quiver.v1.UdfWorker service (Execute, Manage) on grpc+unix:PATH or
// grpc+tcp:HOST:PORT until Manage(shutdown), SIGTERM, or the death of the
// process that started the worker.

#include <string>

#include "quiver/sdk/command_line.h"
#include "quiver/sdk/registry.h"

namespace quiver::sdk {

/// Serves the UdfWorker service at `options.connection` and returns the exit
/// status: kExitOk after a stop, kExitConnectionLost when the endpoint cannot be
/// bound, kExitUsage for an endpoint or TLS files it cannot use.
int ServeGrpc(const WorkerOptions& options, const std::string& secret, const Registry& registry);

}  // namespace quiver::sdk
