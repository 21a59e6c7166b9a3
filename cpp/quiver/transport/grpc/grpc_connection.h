#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <arrow/result.h>

#include "quiver/transport/connection.h"

namespace quiver::transport::grpc_transport {

/// Where and how to reach a gRPC worker.
struct GrpcTarget {
  /// "grpc+unix:/path/to/socket" or "grpc+tcp:HOST:PORT".
  std::string endpoint;
  /// The per-worker secret, sent with every call as metadata "quiver-secret".
  std::string secret;
  /// PEM root certificates: set for TLS (grpc+tcp only), empty for plaintext.
  std::string tls_root_certificates;
};

/// Checks an endpoint and returns the gRPC target string for it.
arrow::Result<std::string> GrpcTargetOf(const std::string& endpoint);

/// Asks the worker at `target` for a heartbeat, waiting at most `timeout`;
/// returns the worker's pid. Fails when it does not answer or refuses the secret.
arrow::Result<uint32_t> PingGrpcWorker(const GrpcTarget& target, std::chrono::milliseconds timeout);

/// Makes a Connection to the gRPC worker at `target`: each execution (Init to
/// FinishResponse or CancelResponse) is one Execute call; heartbeats and
/// shutdowns outside executions go through Manage. Batches leave as one
/// grpc::Slice per Arrow buffer, referencing the buffer (no copy).
arrow::Result<std::unique_ptr<Connection>> ConnectGrpc(const GrpcTarget& target);

}  // namespace quiver::transport::grpc_transport
