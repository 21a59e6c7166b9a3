// The `shm` transport's endpoint: as `unix`, the engine listens on a Unix
// socket in its private directory and the worker connects and opens with
// Hello; then the engine hands it two shared-memory arenas (ShmSetup with
// memfds) and batches travel through them (docs/protocol.md, section 10).

#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "quiver/io/unix_socket.h"
#include "quiver/protocol/version.h"
#include "quiver/transport/registry.h"
#include "quiver/transport/shm/shm_connection.h"

namespace quiver::transport::shm {
namespace {

// Compares in time that does not depend on where the strings differ.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i) difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  return difference == 0;
}

arrow::Status CheckHello(Connection& connection, WorkerProcess& process, const std::string& secret,
                         io::Deadline deadline) {
  auto reply = connection.Receive(deadline);
  if (!reply.ok()) return arrow::Status::IOError("no Hello from ", process.DescribeFailure());
  if (!reply->control || !reply->control->has_hello()) {
    return arrow::Status::IOError(process.Describe(),
                                  " did not start with Hello: it does not speak quiver.v1");
  }
  const v1::Hello& hello = reply->control->hello();
  if (!ConstantTimeEquals(hello.secret(), secret)) {
    return arrow::Status::IOError(process.Describe(), " presented a wrong secret and was refused");
  }
  if (hello.protocol_version() != protocol::kProtocolVersion) {
    return arrow::Status::IOError(process.Describe(), " speaks protocol version ",
                                  hello.protocol_version(), "; this engine speaks ",
                                  protocol::kProtocolVersion);
  }
  return arrow::Status::OK();
}

class ShmEndpoint : public WorkerEndpoint {
 public:
  ShmEndpoint(std::string socket_path, io::UniqueFd listener, protocol::FramingLimits limits)
      : socket_path_(std::move(socket_path)), listener_(std::move(listener)), limits_(limits) {}

  ~ShmEndpoint() override {
    if (listener_.valid()) ::unlink(socket_path_.c_str());
  }

  std::string endpoint() const override { return "shm:" + socket_path_; }
  std::vector<std::string> worker_arguments() const override { return {}; }
  Readiness readiness() const override { return {"connect", "connected"}; }

  arrow::Result<std::unique_ptr<Connection>> Accept(WorkerProcess& process,
                                                    const std::string& secret, io::Deadline step,
                                                    io::Deadline deadline) override {
    ARROW_ASSIGN_OR_RAISE(auto socket, io::AcceptUnixSocket(listener_, step));
    if (!socket) return nullptr;
    listener_.Reset();
    ::unlink(socket_path_.c_str());
    auto connection = MakeShmConnection(std::move(*socket), endpoint(), limits_);
    ARROW_RETURN_NOT_OK(CheckHello(*connection, process, secret, deadline));
    auto set_up = connection->Setup(DefaultArenaSizes(), deadline);
    if (!set_up.ok()) {
      return arrow::Status::IOError(process.Describe(), ": ", set_up.message());
    }
    return connection;
  }

 private:
  std::string socket_path_;
  io::UniqueFd listener_;
  protocol::FramingLimits limits_;
};

class ShmTransport : public Transport {
 public:
  arrow::Result<std::unique_ptr<WorkerEndpoint>> Prepare(const EndpointOptions& options) override {
    std::string path = options.private_directory + "/worker-" + options.worker_id + ".sock";
    ARROW_ASSIGN_OR_RAISE(io::UniqueFd listener, io::ListenUnixSocket(path));
    return std::make_unique<ShmEndpoint>(std::move(path), std::move(listener), options.limits);
  }
};

const TransportRegistration kRegistration({"shm"}, std::make_shared<ShmTransport>());

}  // namespace
}  // namespace quiver::transport::shm
