#pragma once

#include <memory>
#include <string>

#include <arrow/result.h>
#include <grpcpp/security/server_credentials.h>

#include "quiver/sdk/command_line.h"

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

/// Returns TLS credentials from --tls-cert/--tls-key, or plaintext ones for a
/// `local` endpoint (a Unix socket, loopback); a non-local endpoint without TLS
/// fails with Invalid.
arrow::Result<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const WorkerOptions& options, bool local);

/// Prints the line that says the worker serves (`quiver-worker[ID] serving
/// WHAT on CONNECTION`), whatever the log level: people and scripts look for it.
void AnnounceServing(const WorkerOptions& options, const char* what);

}  // namespace quiver::sdk
