// The `spark` transport: the engine starts a worker that speaks Spark's
// UdfWorker protocol (docs/spark-protocol.md) as `COMMAND ARGS --id ID
// --connection PATH`, PATH a Unix socket in the engine's private directory; the
// worker is ready once it answers Manage(Heartbeat) from the pid the engine
// started. Spark's protocol has no secret: the socket's directory (0700) and the
// worker's socket mode (0600) keep other users out (section 7).

#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "quiver/transport/registry.h"
#include "quiver/transport/spark/spark_client.h"
#include "quiver/transport/spark/spark_connection.h"

namespace quiver::transport::spark {
namespace {

// Time one readiness probe of a starting worker may take.
constexpr std::chrono::milliseconds kProbeTimeout{500};
// Pause between two probes (the contract says every 10-50 ms).
constexpr std::chrono::milliseconds kProbePause{20};

class SparkEndpoint : public WorkerEndpoint {
 public:
  explicit SparkEndpoint(std::string socket_path) : socket_path_(std::move(socket_path)) {}

  std::string endpoint() const override { return socket_path_; }
  std::vector<std::string> worker_arguments() const override { return {}; }
  Readiness readiness() const override {
    return {"serve Spark's UdfWorker on " + socket_path_,
            "served Spark's UdfWorker on " + socket_path_};
  }

  arrow::Result<std::unique_ptr<Connection>> Accept(WorkerProcess& process, const std::string&,
                                                    io::Deadline, io::Deadline) override {
    if (!std::filesystem::exists(socket_path_)) {
      // Not bound yet: a probe now would only fail and slow the next ones.
      last_failure_ = "the worker did not create " + socket_path_ + " yet";
      std::this_thread::sleep_for(kProbePause);
      return nullptr;
    }
    if (probe_channel_ == nullptr) {
      probe_channel_ = MakeSparkChannel(SparkAddress(socket_path_), /*probe=*/true);
    }
    auto pid = PingSparkWorker(probe_channel_.get(), kProbeTimeout);
    if (!pid.ok()) {
      last_failure_ = pid.status().message();
      // A worker that answers but breaks the heartbeat's rules will not mend.
      if (pid.status().message().find("gRPC status") == std::string::npos) {
        return arrow::Status::IOError(process.Describe(), " on ", socket_path_, ": ",
                                      pid.status().message());
      }
      std::this_thread::sleep_for(kProbePause);
      return nullptr;
    }
    if (*pid != process.pid()) {
      return arrow::Status::IOError(socket_path_, " is served by pid ", *pid, ", not by ",
                                    process.Describe(), "; another process took the endpoint");
    }
    return ConnectSpark(socket_path_);
  }

  std::string last_failure() const override { return last_failure_; }

 private:
  std::string socket_path_;
  std::shared_ptr<grpc::Channel> probe_channel_;
  std::string last_failure_;
};

class SparkTransport : public Transport {
 public:
  arrow::Result<std::unique_ptr<WorkerEndpoint>> Prepare(const EndpointOptions& options) override {
    return std::make_unique<SparkEndpoint>(options.private_directory + "/worker-" +
                                           options.worker_id + ".sock");
  }
};

const TransportRegistration kRegistration({"spark"}, std::make_shared<SparkTransport>());

}  // namespace
}  // namespace quiver::transport::spark
