// The `unix` transport's endpoint (alias `uds`): the engine listens on a Unix
// socket in its private directory, the worker connects and opens with Hello,
// which proves the per-worker secret (docs/protocol.md, section 4).

#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "quiver/io/unix_socket.h"
#include "quiver/protocol/version.h"
#include "quiver/transport/registry.h"
#include "quiver/transport/uds/uds_connection.h"

namespace quiver::transport::uds {
namespace {

// Compares in time that does not depend on where the strings differ.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i) difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  return difference == 0;
}

// Reads the worker's Hello and checks its secret and protocol version.
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

class UdsEndpoint : public WorkerEndpoint {
 public:
  UdsEndpoint(std::string socket_path, io::UniqueFd listener, protocol::FramingLimits limits)
      : socket_path_(std::move(socket_path)), listener_(std::move(listener)), limits_(limits) {}

  ~UdsEndpoint() override {
    if (listener_.valid()) ::unlink(socket_path_.c_str());
  }

  std::string endpoint() const override { return "unix:" + socket_path_; }
  std::vector<std::string> worker_arguments() const override { return {}; }
  Readiness readiness() const override { return {"connect", "connected"}; }

  arrow::Result<std::unique_ptr<Connection>> Accept(WorkerProcess& process,
                                                    const std::string& secret, io::Deadline step,
                                                    io::Deadline deadline) override {
    ARROW_ASSIGN_OR_RAISE(auto socket, io::AcceptUnixSocket(listener_, step));
    if (!socket) return nullptr;
    // The connection is made: nobody else may connect to this path again.
    listener_.Reset();
    ::unlink(socket_path_.c_str());
    auto connection = MakeUdsConnection(std::move(*socket), endpoint(), limits_);
    ARROW_RETURN_NOT_OK(CheckHello(*connection, process, secret, deadline));
    return connection;
  }

 private:
  std::string socket_path_;
  io::UniqueFd listener_;
  protocol::FramingLimits limits_;
};

class UdsTransport : public Transport {
 public:
  arrow::Result<std::unique_ptr<WorkerEndpoint>> Prepare(const EndpointOptions& options) override {
    std::string path = options.private_directory + "/worker-" + options.worker_id + ".sock";
    ARROW_ASSIGN_OR_RAISE(io::UniqueFd listener, io::ListenUnixSocket(path));
    return std::make_unique<UdsEndpoint>(std::move(path), std::move(listener), options.limits);
  }
};

const TransportRegistration kRegistration({"unix", "uds"}, std::make_shared<UdsTransport>());

}  // namespace
}  // namespace quiver::transport::uds
