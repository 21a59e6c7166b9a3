// The `auto` transport, the engine's default: shm for a worker that speaks it,
// uds for one that does not, without either noticing. The worker is started
// with `--connection unix:PATH` (which every worker understands) and offered
// `shm:PATH-shm` in QUIVER_SHM_CONNECTION; a worker that speaks shm connects
// there, any other to the unix socket (docs/protocol.md, section 10). The
// engine takes whichever connection comes first and closes the other socket.

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "quiver/transport/registry.h"
#include "quiver/transport/socket_endpoint.h"

namespace quiver::transport::shm {
namespace {

constexpr char kShmOfferVariable[] = "QUIVER_SHM_CONNECTION";

// Waits until `deadline` for a connection on either socket; which one is ready, or -1.
arrow::Result<int> WaitForEither(int first, int second, io::Deadline deadline) {
  pollfd entries[2] = {{first, POLLIN, 0}, {second, POLLIN, 0}};
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const int timeout = static_cast<int>(std::clamp<int64_t>(left.count(), 0, 1000));
    const int ready = ::poll(entries, 2, timeout);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return arrow::Status::IOError("poll: ", std::strerror(errno));
    if ((entries[0].revents & POLLIN) != 0) return 0;
    if ((entries[1].revents & POLLIN) != 0) return 1;
    if (std::chrono::steady_clock::now() >= deadline) return -1;
  }
}

class OfferingEndpoint : public WorkerEndpoint {
 public:
  OfferingEndpoint(std::unique_ptr<WorkerEndpoint> shm, std::unique_ptr<WorkerEndpoint> uds)
      : shm_(std::move(shm)), uds_(std::move(uds)) {}

  std::string endpoint() const override { return uds_->endpoint(); }
  std::vector<std::string> worker_arguments() const override { return {}; }
  std::map<std::string, std::string> worker_environment() const override {
    return {{kShmOfferVariable, shm_->endpoint()}};
  }
  Readiness readiness() const override { return {"connect", "connected"}; }

  arrow::Result<std::unique_ptr<Connection>> Accept(WorkerProcess& process,
                                                    const std::string& secret, io::Deadline step,
                                                    io::Deadline deadline) override {
    auto& shm = static_cast<SocketEndpoint&>(*shm_);
    auto& uds = static_cast<SocketEndpoint&>(*uds_);
    ARROW_ASSIGN_OR_RAISE(int ready,
                          WaitForEither(shm.listening_socket(), uds.listening_socket(), step));
    if (ready < 0) return nullptr;
    // The chosen endpoint accepts at once; the other one's socket goes with it.
    const io::Deadline now = std::chrono::steady_clock::now();
    auto connection = (ready == 0 ? shm_ : uds_)->Accept(process, secret, now, deadline);
    if (connection.ok() && *connection != nullptr) (ready == 0 ? uds_ : shm_).reset();
    return connection;
  }

 private:
  std::unique_ptr<WorkerEndpoint> shm_;
  std::unique_ptr<WorkerEndpoint> uds_;
};

class OfferingTransport : public Transport {
 public:
  arrow::Result<std::unique_ptr<WorkerEndpoint>> Prepare(const EndpointOptions& options) override {
    ARROW_ASSIGN_OR_RAISE(auto uds_transport, FindTransport("unix"));
    ARROW_ASSIGN_OR_RAISE(auto shm_transport, FindTransport("shm"));
    ARROW_ASSIGN_OR_RAISE(auto uds, uds_transport->Prepare(options));
    EndpointOptions shm_options = options;
    shm_options.worker_id += "-shm";  // its own socket file beside the unix one
    ARROW_ASSIGN_OR_RAISE(auto shm, shm_transport->Prepare(shm_options));
    return std::make_unique<OfferingEndpoint>(std::move(shm), std::move(uds));
  }
};

const TransportRegistration kRegistration(
    {"auto"}, std::make_shared<OfferingTransport>(),
    "shm for workers that speak it, uds for the others (the default)");

}  // namespace
}  // namespace quiver::transport::shm
