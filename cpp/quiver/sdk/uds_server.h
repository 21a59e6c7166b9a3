#pragma once

// The `uds` and `shm` transports, worker side (docs/protocol.md, sections 4 and
// 10): connect to the engine's Unix socket, say Hello (over shm: take the
// arenas), then turn frames into events of the state machine until the engine
// closes the connection or says Shutdown.

#include <string>

#include "quiver/sdk/command_line.h"
#include "quiver/sdk/registry.h"

namespace quiver::sdk {

/// Serves executions over `options.connection` ("unix:PATH" or "shm:PATH") and returns the exit
/// status: kExitOk after Shutdown, SIGTERM or the engine closing the connection
/// at a frame boundary; kExitConnectionLost when it breaks or a bad frame arrives.
int ServeUds(const WorkerOptions& options, const std::string& secret, const Registry& registry);

}  // namespace quiver::sdk
