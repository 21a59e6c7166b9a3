#pragma once

#include <string>

#include <arrow/result.h>

namespace quiver::sdk {

/// Where a gRPC worker listens.
struct GrpcEndpoint {
  /// The address gRPC binds: "unix:/path" or "HOST:PORT".
  std::string address;
  /// True for a Unix socket or a loopback host (reachable from this machine only).
  bool local = true;
  /// True for grpc+tcp (the worker must bind exactly the given port).
  bool tcp = false;
};

/// Reads "grpc+unix:/path" (also "grpc+unix:///path") or "grpc+tcp:HOST:PORT"
/// (an empty HOST means 127.0.0.1; IPv6 hosts in brackets).
arrow::Result<GrpcEndpoint> ParseGrpcEndpoint(const std::string& endpoint);

}  // namespace quiver::sdk
