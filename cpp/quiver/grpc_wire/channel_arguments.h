#pragma once

// How the engine's gRPC channels to a worker are configured, whichever
// protocol the worker speaks (quiver.v1's grpc transports, Spark's dialect).

#include <string>

#include <grpcpp/support/channel_arguments.h>

namespace quiver::grpc_wire {

/// The arguments of a channel to a worker at `address` (a gRPC target such as
/// `unix:/path` or `127.0.0.1:PORT`): no gRPC message size limit (quiver
/// enforces its own), and `localhost` as :authority on Unix sockets. `probe`: a
/// channel only for readiness probes, which must not inherit the connect
/// backoff of earlier probes (gRPC's default starts at 1 s and grows): it gets
/// its own subchannels and short reconnection pauses.
grpc::ChannelArguments WorkerChannelArguments(const std::string& address, bool probe);

}  // namespace quiver::grpc_wire
