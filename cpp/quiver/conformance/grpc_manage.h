#pragma once

// Manage calls with the metadata the kit chooses (a wrong secret, none), which
// the engine's gRPC connection never sends.

#include <chrono>
#include <optional>
#include <string>

#include <arrow/result.h>

#include "quiver/v1/quiver.pb.h"

namespace quiver::conformance {

/// How a Manage call ended.
struct ManageOutcome {
  /// The gRPC status code (0 OK, 16 UNAUTHENTICATED, ...) and its message.
  int code = 0;
  std::string message;
  v1::ManageResponse response;
};

/// Calls Manage on the gRPC worker at `endpoint` ("grpc+unix:PATH",
/// "grpc+tcp:HOST:PORT") with `secret` as "quiver-secret" metadata (none when
/// nullopt). Fails only when the endpoint is not a gRPC one.
arrow::Result<ManageOutcome> CallManage(const std::string& endpoint,
                                        const std::optional<std::string>& secret,
                                        const v1::ManageRequest& request,
                                        std::chrono::milliseconds timeout);

}  // namespace quiver::conformance
