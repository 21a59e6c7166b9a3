// The gRPC transports `grpc+unix` and `grpc+tcp`: the worker serves the
// quiver.v1 UdfWorker service on a Unix socket in the engine's private
// directory or on a free loopback TCP port; the engine knows it is ready when
// it answers a heartbeat with the secret, from the pid the engine started.

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "quiver/io/loopback_port.h"
#include "quiver/transport/grpc/grpc_connection.h"
#include "quiver/transport/registry.h"

namespace quiver::transport::grpc_transport {
namespace {

// Time one readiness probe of a starting worker may take.
constexpr std::chrono::milliseconds kProbeTimeout{500};
// Pause between two probes of a worker that did not answer yet.
constexpr std::chrono::milliseconds kProbePause{20};

arrow::Result<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return arrow::Status::IOError("cannot read ", path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// Makes the target of `endpoint`, reading the root certificates file if any.
arrow::Result<GrpcTarget> MakeTarget(std::string endpoint, std::string secret,
                                     const std::string& tls_root_certificates_file) {
  GrpcTarget target{std::move(endpoint), std::move(secret), ""};
  if (!tls_root_certificates_file.empty()) {
    ARROW_ASSIGN_OR_RAISE(target.tls_root_certificates, ReadFile(tls_root_certificates_file));
  }
  return target;
}

class GrpcEndpoint : public WorkerEndpoint {
 public:
  /// `socket_path`: the socket file of a grpc+unix endpoint, empty for TCP.
  GrpcEndpoint(GrpcTarget target, std::string socket_path)
      : target_(std::move(target)), socket_path_(std::move(socket_path)) {}

  std::string endpoint() const override { return target_.endpoint; }
  std::vector<std::string> worker_arguments() const override { return {"--transport", "grpc"}; }
  Readiness readiness() const override {
    return {"serve " + target_.endpoint, "served " + target_.endpoint};
  }

  // Waits until the worker answers a heartbeat with the secret, then checks
  // that it is the process the engine started.
  arrow::Result<std::unique_ptr<Connection>> Accept(WorkerProcess& process,
                                                    const std::string& secret, io::Deadline,
                                                    io::Deadline) override {
    if (!socket_path_.empty() && !std::filesystem::exists(socket_path_)) {
      // Not bound yet: a probe now would only fail and slow the next ones.
      last_failure_ = "the worker did not create " + socket_path_ + " yet";
      std::this_thread::sleep_for(kProbePause);
      return nullptr;
    }
    GrpcTarget target = target_;
    target.secret = secret;
    auto pid = PingGrpcWorker(target, kProbeTimeout);
    if (!pid.ok()) {
      last_failure_ = pid.status().message();
      std::this_thread::sleep_for(kProbePause);
      return nullptr;
    }
    if (static_cast<pid_t>(*pid) != process.pid()) {
      return arrow::Status::IOError(target_.endpoint, " is served by pid ", *pid, ", not by ",
                                    process.Describe(), "; another process took the endpoint");
    }
    return ConnectGrpc(target);
  }

  std::string last_failure() const override { return last_failure_; }

 private:
  GrpcTarget target_;  // without the secret, which Accept is given
  std::string socket_path_;
  std::string last_failure_;
};

class GrpcTransport : public Transport {
 public:
  explicit GrpcTransport(bool tcp) : tcp_(tcp) {}

  arrow::Result<std::unique_ptr<WorkerEndpoint>> Prepare(const EndpointOptions& options) override {
    std::string endpoint;
    std::string socket_path;
    if (tcp_) {
      ARROW_ASSIGN_OR_RAISE(int port, io::FreeLoopbackPort());
      endpoint = "grpc+tcp:127.0.0.1:" + std::to_string(port);
    } else {
      socket_path = options.private_directory + "/worker-" + options.worker_id + ".sock";
      endpoint = "grpc+unix:" + socket_path;
    }
    ARROW_ASSIGN_OR_RAISE(GrpcTarget target,
                          MakeTarget(std::move(endpoint), "", options.tls_root_certificates_file));
    return std::make_unique<GrpcEndpoint>(std::move(target), std::move(socket_path));
  }

  arrow::Result<std::unique_ptr<Connection>> ConnectRemote(
      const RemoteEndpoint& remote, std::chrono::milliseconds timeout) override {
    ARROW_ASSIGN_OR_RAISE(GrpcTarget target, MakeTarget(remote.endpoint, remote.secret,
                                                        remote.tls_root_certificates_file));
    auto pid = PingGrpcWorker(target, timeout);
    if (!pid.ok()) {
      return pid.status().WithMessage("remote worker at ", remote.endpoint,
                                      " does not answer: ", pid.status().message());
    }
    return ConnectGrpc(target);
  }

 private:
  bool tcp_;
};

const TransportRegistration kUnixRegistration({"grpc+unix", "grpc"},
                                              std::make_shared<GrpcTransport>(false),
                                              "the UdfWorker gRPC service over a Unix socket");
const TransportRegistration kTcpRegistration({"grpc+tcp"}, std::make_shared<GrpcTransport>(true),
                                             "the UdfWorker gRPC service over loopback TCP");

}  // namespace
}  // namespace quiver::transport::grpc_transport
