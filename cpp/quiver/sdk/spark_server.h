#pragma once

// Spark's dialect, worker side (docs/spark-protocol.md): serve Spark's
// org.apache.spark.udf.worker.UdfWorker service (Execute, Manage) on a Unix
// socket or loopback TCP until a ShutdownRequest, SIGTERM, or the death of the
// process that started the worker.

#include "quiver/sdk/command_line.h"
#include "quiver/sdk/registry.h"

namespace quiver::sdk {

/// Serves the UdfWorker service at `options.connection` and returns the exit
/// status: kExitOk after a stop, kExitConnectionLost when the endpoint cannot be
/// served (a socket path that exists, a port taken), kExitUsage for an endpoint
/// or TLS files it cannot use.
int ServeSpark(const WorkerOptions& options, const Registry& registry);

}  // namespace quiver::sdk
