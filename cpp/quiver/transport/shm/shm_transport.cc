// The `shm` transport's endpoint: as `unix`, the engine listens on a Unix
// socket in its private directory and the worker connects and opens with
// Hello; then the engine hands it two shared-memory arenas (ShmSetup with
// memfds) and batches travel through them (docs/protocol.md, section 10).

#include <memory>
#include <string>
#include <utility>

#include "quiver/transport/registry.h"
#include "quiver/transport/shm/shm_connection.h"
#include "quiver/transport/socket_endpoint.h"

namespace quiver::transport::shm {
namespace {

class ShmEndpoint : public SocketEndpoint {
 public:
  using SocketEndpoint::SocketEndpoint;

 protected:
  std::unique_ptr<Connection> Connect(io::UniqueFd socket,
                                      const protocol::FramingLimits& limits) override {
    return MakeShmConnection(std::move(socket), endpoint(), limits);
  }

  // Hands the worker its two arenas (ShmSetup with their memfds).
  arrow::Status AfterHello(Connection& connection, WorkerProcess& process,
                           io::Deadline deadline) override {
    // Connect made it: the connection is a ShmConnection.
    auto set_up = static_cast<ShmConnection&>(connection).Setup(DefaultArenaSizes(), deadline);
    if (!set_up.ok()) return arrow::Status::IOError(process.Describe(), ": ", set_up.message());
    return arrow::Status::OK();
  }
};

class ShmTransport : public Transport {
 public:
  arrow::Result<std::unique_ptr<WorkerEndpoint>> Prepare(const EndpointOptions& options) override {
    std::string path;
    ARROW_ASSIGN_OR_RAISE(io::UniqueFd listener, SocketEndpoint::Listen(options, &path));
    return std::make_unique<ShmEndpoint>("shm", std::move(path), std::move(listener),
                                         options.limits);
  }
};

const TransportRegistration kRegistration(
    {"shm"}, std::make_shared<ShmTransport>(),
    "quiver.v1 framing over a Unix socket, batches in shared memory");

}  // namespace
}  // namespace quiver::transport::shm
