#pragma once

// The `uds` transport, worker side (docs/protocol.md, section 4): connect to the
// engine's Unix socket, say Hello, then turn frames into events of the state
// machine until the engine closes the connection or says Shutdown.

#include <string>

#include "quiver/sdk/command_line.h"
#include "quiver/sdk/registry.h"

namespace quiver::sdk {

/// Serves executions over `options.connection` ("unix:PATH") and returns the exit
/// status: kExitOk after Shutdown, SIGTERM or the engine closing the connection
/// at a frame boundary; kExitConnectionLost when it breaks or a bad frame arrives.
int ServeUds(const WorkerOptions& options, const std::string& secret, const Registry& registry);

}  // namespace quiver::sdk
