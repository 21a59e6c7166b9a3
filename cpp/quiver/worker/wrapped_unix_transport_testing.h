#pragma once

// For tests: a transport registered by a test file that carries the quiver.v1
// framing over a Unix socket, as the built-in "unix" one does, with every
// accepted connection handed to the test's own wrapper (one that counts what
// crosses it, or watches which thread reads). The Python worker connects to
// its "unix:" endpoint as to any other.

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

#include "quiver/io/unix_socket.h"
#include "quiver/transport/registry.h"
#include "quiver/transport/uds/uds_connection.h"

namespace quiver::worker::testing {

using WrapConnection =
    std::function<std::unique_ptr<transport::Connection>(std::unique_ptr<transport::Connection>)>;

class WrappedUnixEndpoint : public transport::WorkerEndpoint {
 public:
  WrappedUnixEndpoint(std::string name, std::string path, io::UniqueFd listener,
                      WrapConnection wrap)
      : name_(std::move(name)),
        path_(std::move(path)),
        listener_(std::move(listener)),
        wrap_(std::move(wrap)) {}
  std::string endpoint() const override { return "unix:" + path_; }
  std::vector<std::string> worker_arguments() const override { return {}; }
  transport::Readiness readiness() const override {
    return {"reach the " + name_, "reached the " + name_};
  }

  arrow::Result<std::unique_ptr<transport::Connection>> Accept(transport::WorkerProcess& process,
                                                               const std::string& secret,
                                                               io::Deadline step,
                                                               io::Deadline deadline) override {
    ARROW_ASSIGN_OR_RAISE(auto socket, io::AcceptUnixSocket(listener_, step));
    if (!socket) return nullptr;
    auto connection = wrap_(transport::uds::MakeUdsConnection(std::move(*socket), endpoint()));
    ARROW_ASSIGN_OR_RAISE(auto hello, connection->Receive(deadline));
    if (!hello.control || hello.control->hello().secret() != secret) {
      return arrow::Status::IOError(process.Describe(), " did not prove the secret");
    }
    return connection;
  }

 private:
  std::string name_;
  std::string path_;
  io::UniqueFd listener_;
  WrapConnection wrap_;
};

/// The transport a test registers under `name`: a socket per worker in the
/// run's private directory, each connection wrapped by `wrap`.
class WrappedUnixTransport : public transport::Transport {
 public:
  WrappedUnixTransport(std::string name, WrapConnection wrap)
      : name_(std::move(name)), wrap_(std::move(wrap)) {}

  arrow::Result<std::unique_ptr<transport::WorkerEndpoint>> Prepare(
      const transport::EndpointOptions& options) override {
    std::string path = options.private_directory + "/" + name_ + "-" + options.worker_id + ".sock";
    ARROW_ASSIGN_OR_RAISE(auto listener, io::ListenUnixSocket(path));
    return std::make_unique<WrappedUnixEndpoint>(name_, std::move(path), std::move(listener),
                                                 wrap_);
  }

 private:
  std::string name_;
  WrapConnection wrap_;
};

}  // namespace quiver::worker::testing
