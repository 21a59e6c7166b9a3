#include "quiver/transport/socket_endpoint.h"

#include <unistd.h>

#include <utility>

#include "quiver/io/unix_socket.h"
#include "quiver/protocol/version.h"

namespace quiver::transport {

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

arrow::Result<io::UniqueFd> SocketEndpoint::Listen(const EndpointOptions& options,
                                                   std::string* path) {
  *path = options.private_directory + "/worker-" + options.worker_id + ".sock";
  return io::ListenUnixSocket(*path);
}

SocketEndpoint::SocketEndpoint(std::string scheme, std::string socket_path, io::UniqueFd listener,
                               protocol::FramingLimits limits)
    : scheme_(std::move(scheme)),
      socket_path_(std::move(socket_path)),
      listener_(std::move(listener)),
      limits_(limits) {}

SocketEndpoint::~SocketEndpoint() {
  if (listener_.valid()) ::unlink(socket_path_.c_str());
}

arrow::Result<std::unique_ptr<Connection>> SocketEndpoint::Accept(WorkerProcess& process,
                                                                  const std::string& secret,
                                                                  io::Deadline step,
                                                                  io::Deadline deadline) {
  ARROW_ASSIGN_OR_RAISE(auto socket, io::AcceptUnixSocket(listener_, step));
  if (!socket) return nullptr;
  // The connection is made: nobody else may connect to this path again.
  listener_.Reset();
  ::unlink(socket_path_.c_str());
  auto connection = Connect(std::move(*socket), limits_);
  ARROW_RETURN_NOT_OK(CheckHello(*connection, process, secret, deadline));
  ARROW_RETURN_NOT_OK(AfterHello(*connection, process, deadline));
  return connection;
}

}  // namespace quiver::transport
