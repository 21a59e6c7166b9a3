#pragma once

// Where a worker in Spark's dialect serves (docs/spark-protocol.md, section 1):
// `--connection PATH` (a Unix socket to create) or `--connection PORT` (loopback
// TCP, 127.0.0.1 and ::1); quiver's grpc+unix: and grpc+tcp: forms too.

#include <string>
#include <vector>

#include <arrow/result.h>

namespace quiver::sdk {

/// A parsed --connection.
struct SparkEndpoint {
  /// The addresses gRPC binds ("unix:/path", "127.0.0.1:PORT", "[::1]:PORT").
  std::vector<std::string> addresses;
  /// The socket's path for a Unix socket, else empty.
  std::string socket_path;
  /// True for a Unix socket or a loopback host.
  bool local = true;
};

/// Reads --connection: decimal digits are a port (127.0.0.1 and [::1]; the
/// second only when `ipv6_loopback`), grpc+unix:/grpc+tcp: are quiver's forms,
/// anything else is a socket path. Fails with Invalid for a port out of range
/// or a malformed quiver endpoint.
arrow::Result<SparkEndpoint> ParseSparkConnection(const std::string& connection,
                                                  bool ipv6_loopback);

/// Tells whether this machine can bind ::1.
bool HasIpv6Loopback();

}  // namespace quiver::sdk
