#include "quiver/grpc_wire/channel_arguments.h"

#include <grpc/grpc.h>

namespace quiver::grpc_wire {
namespace {

// Reconnection pauses of a readiness probe: short, since a starting worker
// binds its endpoint within milliseconds.
constexpr int kProbeReconnectBackoffMs = 20;

}  // namespace

grpc::ChannelArguments WorkerChannelArguments(const std::string& address, bool probe) {
  grpc::ChannelArguments arguments;
  // quiver enforces its own message limits; gRPC's 4 MiB default would cut batches.
  arguments.SetMaxReceiveMessageSize(-1);
  arguments.SetMaxSendMessageSize(-1);
  if (probe) {
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kProbeReconnectBackoffMs);
    arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kProbeReconnectBackoffMs);
    arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 4 * kProbeReconnectBackoffMs);
  }
  // gRPC sends the socket path as :authority for unix: targets, which some
  // HTTP/2 servers (tonic, so Rust workers) reject as malformed.
  if (address.starts_with("unix:")) arguments.SetString(GRPC_ARG_DEFAULT_AUTHORITY, "localhost");
  return arguments;
}

}  // namespace quiver::grpc_wire
