// The `unix` transport's endpoint (alias `uds`): the engine listens on a Unix
// socket in its private directory, the worker connects and opens with Hello,
// which proves the per-worker secret (docs/protocol.md, sections 1 and 4).

#include <memory>
#include <string>
#include <utility>

#include "quiver/transport/registry.h"
#include "quiver/transport/socket_endpoint.h"
#include "quiver/transport/uds/uds_connection.h"

namespace quiver::transport::uds {
namespace {

class UdsEndpoint : public SocketEndpoint {
 public:
  using SocketEndpoint::SocketEndpoint;

 protected:
  std::unique_ptr<Connection> Connect(io::UniqueFd socket,
                                      const protocol::FramingLimits& limits) override {
    return MakeUdsConnection(std::move(socket), endpoint(), limits);
  }
};

class UdsTransport : public Transport {
 public:
  arrow::Result<std::unique_ptr<WorkerEndpoint>> Prepare(const EndpointOptions& options) override {
    std::string path;
    ARROW_ASSIGN_OR_RAISE(io::UniqueFd listener, SocketEndpoint::Listen(options, &path));
    return std::make_unique<UdsEndpoint>("unix", std::move(path), std::move(listener),
                                         options.limits);
  }
};

const TransportRegistration kRegistration({"unix", "uds"}, std::make_shared<UdsTransport>(),
                                          "quiver.v1 framing over a Unix socket");

}  // namespace
}  // namespace quiver::transport::uds
