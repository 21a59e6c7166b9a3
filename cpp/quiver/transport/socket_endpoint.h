#pragma once

// What the transports whose workers connect to a Unix socket in the engine's
// private directory (unix, shm) share: the listening socket `worker-ID.sock`,
// accepting exactly one connection, and the worker's Hello, which must carry
// the per-worker secret and this engine's protocol version (docs/protocol.md,
// section 4).

#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

#include "quiver/io/deadline.h"
#include "quiver/io/unique_fd.h"
#include "quiver/protocol/frame_codec.h"
#include "quiver/transport/connection.h"
#include "quiver/transport/worker_endpoint.h"

namespace quiver::transport {

/// Returns whether `a` equals `b`, in time that does not depend on where they differ.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

/// Reads the worker's Hello from `connection` by `deadline` and checks its
/// secret and protocol version; errors name `process`.
arrow::Status CheckHello(Connection& connection, WorkerProcess& process, const std::string& secret,
                         io::Deadline deadline);

/// \brief An endpoint that listens on a Unix socket for its one worker.
///
/// Accept takes the first connection, removes the socket path (nobody else may
/// connect after the worker), wraps the socket with Connect and checks the
/// Hello; AfterHello is the transport's own opening step.
class SocketEndpoint : public WorkerEndpoint {
 public:
  /// Listens on `worker-ID.sock` in `options.private_directory`.
  static arrow::Result<io::UniqueFd> Listen(const EndpointOptions& options, std::string* path);

  SocketEndpoint(std::string scheme, std::string socket_path, io::UniqueFd listener,
                 protocol::FramingLimits limits);
  ~SocketEndpoint() override;

  std::string endpoint() const override { return scheme_ + ":" + socket_path_; }
  std::vector<std::string> worker_arguments() const override { return {}; }
  Readiness readiness() const override { return {"connect", "connected"}; }

  /// Returns the listening socket (-1 once a worker connected), to wait on several endpoints.
  int listening_socket() const { return listener_.get(); }

  arrow::Result<std::unique_ptr<Connection>> Accept(WorkerProcess& process,
                                                    const std::string& secret, io::Deadline step,
                                                    io::Deadline deadline) final;

 protected:
  /// Wraps a connected socket in this transport's connection.
  virtual std::unique_ptr<Connection> Connect(io::UniqueFd socket,
                                              const protocol::FramingLimits& limits) = 0;

  /// Runs after a good Hello on the connection Connect made.
  virtual arrow::Status AfterHello(Connection& /*connection*/, WorkerProcess& /*process*/,
                                   io::Deadline /*deadline*/) {
    return arrow::Status::OK();
  }

 private:
  std::string scheme_;
  std::string socket_path_;
  io::UniqueFd listener_;
  protocol::FramingLimits limits_;
};

}  // namespace quiver::transport
