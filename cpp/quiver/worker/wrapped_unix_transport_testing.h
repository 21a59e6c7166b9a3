#pragma once

// For tests: a transport registered by a test file that carries the quiver.v1
// framing over a Unix socket, as the built-in "unix" one does (SocketEndpoint:
// accept, Hello checked), with every connection handed to the test's own
// wrapper (one that counts what crosses it, or watches which thread reads).
// The Python worker connects to its "unix:" endpoint as to any other.

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include <arrow/result.h>

#include "quiver/transport/registry.h"
#include "quiver/transport/socket_endpoint.h"
#include "quiver/transport/uds/uds_connection.h"

namespace quiver::worker::testing {

using WrapConnection =
    std::function<std::unique_ptr<transport::Connection>(std::unique_ptr<transport::Connection>)>;

class WrappedUnixEndpoint : public transport::SocketEndpoint {
 public:
  WrappedUnixEndpoint(std::string path, io::UniqueFd listener, WrapConnection wrap)
      : SocketEndpoint("unix", std::move(path), std::move(listener), protocol::FramingLimits{}),
        wrap_(std::move(wrap)) {}

 protected:
  std::unique_ptr<transport::Connection> Connect(io::UniqueFd socket,
                                                 const protocol::FramingLimits& limits) override {
    return wrap_(transport::uds::MakeUdsConnection(std::move(socket), endpoint(), limits));
  }

 private:
  WrapConnection wrap_;
};

/// The transport a test registers: a socket per worker in the run's private
/// directory, each connection wrapped by `wrap`.
class WrappedUnixTransport : public transport::Transport {
 public:
  explicit WrappedUnixTransport(WrapConnection wrap) : wrap_(std::move(wrap)) {}

  arrow::Result<std::unique_ptr<transport::WorkerEndpoint>> Prepare(
      const transport::EndpointOptions& options) override {
    std::string path;
    ARROW_ASSIGN_OR_RAISE(auto listener, transport::SocketEndpoint::Listen(options, &path));
    return std::make_unique<WrappedUnixEndpoint>(std::move(path), std::move(listener), wrap_);
  }

 private:
  WrapConnection wrap_;
};

}  // namespace quiver::worker::testing
