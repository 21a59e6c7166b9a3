#include "quiver/sdk/spark_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/method_handler.h>

#include "quiver/sdk/execution.h"
#include "quiver/sdk/grpc_endpoint.h"
#include "quiver/sdk/log.h"
#include "quiver/sdk/spark_endpoint.h"
#include "quiver/sdk/spark_execute_call.h"
#include "quiver/sdk/stop_watcher.h"
#include "quiver/sdk/udf_worker_methods.h"

namespace quiver::sdk {
namespace {

constexpr char kExecuteMethod[] = "/org.apache.spark.udf.worker.UdfWorker/Execute";
constexpr char kManageMethod[] = "/org.apache.spark.udf.worker.UdfWorker/Manage";
// Streams served at once, as the other quiver workers; one more is refused with
// RESOURCE_EXHAUSTED rather than queued behind the others.
constexpr size_t kMaxStreams = 8;
// How long ShutdownRequest(cancel_sessions) waits for the streams to answer
// (they answer between batches) before it says sessions_settled=false.
constexpr std::chrono::seconds kShutdownCancelWait{10};
// How long the streams get to answer after SIGTERM before the worker exits anyway
// (inside the 5 s graceful_termination_timeout_ms docs/spark-protocol.md suggests).
constexpr std::chrono::seconds kSigtermGrace{2};
// How long a stopping server, whose streams all sent their terminator, lets the
// last answers leave and the engine half-close before it cancels what is left.
constexpr std::chrono::milliseconds kStopGrace{500};

enum class StopMode { kNone, kWhenStreamsEnd, kCancel };

// The UdfWorker service: Execute (one stream per call, several at once) and Manage.
class SparkService : public grpc::Service {
 public:
  explicit SparkService(const Registry* registry) : registry_(registry) {
    for (auto* method :
         UdfWorkerMethods<SparkService, sparkpb::WorkerRequest, sparkpb::WorkerResponse>(
             this, kExecuteMethod, kManageMethod)) {
      AddMethod(method);
    }
  }

  grpc::Status Execute(grpc::ServerContext* context, SparkStream* stream) {
    SparkExecuteCall call(context, stream, registry_, &totals_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_ != StopMode::kNone) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, kShuttingDown);
      }
      if (open_.size() >= kMaxStreams) {
        return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "the worker serves at most " +
                                                                      std::to_string(kMaxStreams) +
                                                                      " Execute streams at once");
      }
      open_.insert(&call);
    }
    grpc::Status status = call.Run([this, &call] {
      std::lock_guard<std::mutex> lock(mutex_);
      settled_.insert(&call);
      changed_.notify_all();
    });
    std::lock_guard<std::mutex> lock(mutex_);
    open_.erase(&call);
    settled_.erase(&call);
    changed_.notify_all();
    return status;
  }

  grpc::Status Manage(grpc::ServerContext*, const sparkpb::WorkerRequest* request,
                      sparkpb::WorkerResponse* response) {
    switch (request->manage_case()) {
      case sparkpb::WorkerRequest::kHeartbeat: {
        auto* metrics = response->mutable_heartbeat()->mutable_metrics();
        for (const auto& [key, value] : HeartbeatMetrics()) (*metrics)[key] = value;
        return grpc::Status::OK;
      }
      case sparkpb::WorkerRequest::kShutdown: {
        const auto& shutdown = request->shutdown();
        bool settled = false;
        if (shutdown.cancel_sessions()) {
          RequestStop(StopMode::kCancel, "ShutdownRequest(cancel_sessions)", kShutdownCancelWait);
          std::unique_lock<std::mutex> lock(mutex_);
          settled = changed_.wait_for(lock, kShutdownCancelWait, [this] { return AllSettled(); });
        } else {
          {
            std::lock_guard<std::mutex> lock(mutex_);
            settled = AllSettled();
          }
          RequestStop(StopMode::kWhenStreamsEnd, "ShutdownRequest", {});
        }
        Log(LogLevel::kInfo, "ShutdownRequest (" + shutdown.reason() +
                                 "); streams settled: " + (settled ? "true" : "false"));
        response->mutable_shutdown()->set_sessions_settled(settled);
        return grpc::Status::OK;
      }
      case sparkpb::WorkerRequest::MANAGE_NOT_SET:
        break;
    }
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "WorkerRequest holds neither heartbeat nor shutdown");
  }

  // Asks the worker to stop; kCancel also stops the open streams, which get
  // `grace` to answer. A stop only ever moves forward.
  void RequestStop(StopMode mode, const std::string& reason, std::chrono::seconds grace) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (mode <= stop_) return;
    stop_ = mode;
    stop_reason_ = reason;
    grace_ = grace;
    if (mode == StopMode::kCancel) {
      for (SparkExecuteCall* call : open_) {
        if (settled_.count(call) == 0) call->RequestStop(kShuttingDown);
      }
    }
    changed_.notify_all();
  }

  // Waits for a stop request, then for the open streams to settle (without a
  // cancel: as long as they take, unless a later request cancels them); returns
  // whether they all settled.
  bool WaitForStop() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return stop_ != StopMode::kNone; });
    changed_.wait(lock, [this] { return AllSettled() || stop_ == StopMode::kCancel; });
    changed_.wait_for(lock, grace_, [this] { return AllSettled(); });
    Log(LogLevel::kInfo, stop_reason_ + ": exiting");
    return AllSettled();
  }

 private:
  std::map<std::string, std::string> HeartbeatMetrics() {
    std::map<std::string, std::string> metrics = totals_.ToMetrics();
    metrics["pid"] = std::to_string(::getpid());
    metrics["peak_rss_bytes"] = std::to_string(PeakRssBytes());
    std::lock_guard<std::mutex> lock(mutex_);
    metrics["sessions_active"] = std::to_string(open_.size() - settled_.size());
    return metrics;
  }

  // Whether every open stream sent its terminator (it may still wait for the
  // engine's half-close). Called with mutex_ held.
  bool AllSettled() const { return settled_.size() == open_.size(); }

  const Registry* registry_;
  SparkTotals totals_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::set<SparkExecuteCall*> open_;
  std::set<SparkExecuteCall*> settled_;  // the open streams that sent their terminator
  StopMode stop_ = StopMode::kNone;
  std::string stop_reason_;
  std::chrono::seconds grace_{0};
};

// Builds and starts the server on every address, the Unix socket created with
// mode 0600 (no moment where another user could connect).
std::unique_ptr<grpc::Server> Start(const SparkEndpoint& endpoint,
                                    const std::shared_ptr<grpc::ServerCredentials>& credentials,
                                    SparkService* service) {
  grpc::ServerBuilder builder;
  std::vector<int> ports(endpoint.addresses.size(), 0);
  for (size_t i = 0; i < endpoint.addresses.size(); ++i) {
    builder.AddListeningPort(endpoint.addresses[i], credentials, &ports[i]);
  }
  builder.RegisterService(service);
  // A port another process serves is a failure to report, not one to share.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // quiver enforces its own limits; gRPC's 4 MiB default would cut batches.
  builder.SetMaxReceiveMessageSize(INT_MAX);
  builder.SetMaxSendMessageSize(INT_MAX);
  const mode_t previous = ::umask(0177);  // the socket: 0600, only its owner may connect
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ::umask(previous);
  for (int port : ports) {
    if (port == 0) return nullptr;
  }
  return server;
}

}  // namespace

int ServeSpark(const WorkerOptions& options, const Registry& registry) {
  auto endpoint = ParseSparkConnection(options.connection, HasIpv6Loopback());
  if (!endpoint.ok()) {
    Log(LogLevel::kError, endpoint.status().message());
    return kExitUsage;
  }
  auto credentials = ServerCredentialsFor(options, endpoint->local);
  if (!credentials.ok()) {
    Log(LogLevel::kError, credentials.status().message());
    return kExitUsage;
  }
  const std::string& path = endpoint->socket_path;
  if (!path.empty() && ::access(path.c_str(), F_OK) == 0) {
    Log(LogLevel::kError, "cannot serve on " + path +
                              ": the path exists already (another worker's socket, or a stale "
                              "one to remove)");
    return kExitConnectionLost;
  }
  SparkService service(&registry);
  std::unique_ptr<grpc::Server> server = Start(*endpoint, *credentials, &service);
  if (server == nullptr) {
    Log(LogLevel::kError, "cannot serve spark on " + options.connection);
    return kExitConnectionLost;
  }
  AnnounceServing(options, "spark");
  auto watcher = StopWatcher::Start(/*watch_parent=*/true, [&service](const std::string& reason) {
    service.RequestStop(StopMode::kCancel, reason, kSigtermGrace);
  });
  if (!watcher.ok()) {
    Log(LogLevel::kError, watcher.status().ToString());
    return kExitConnectionLost;
  }
  const bool settled = service.WaitForStop();
  if (!path.empty()) ::unlink(path.c_str());
  if (!settled) {
    // A UDF that does not return keeps its stream's thread: gRPC could not end it.
    Log(LogLevel::kWarning, "streams did not stop in time; exiting anyway");
    std::fflush(stderr);
    std::_Exit(kExitOk);
  }
  server->Shutdown(std::chrono::system_clock::now() + kStopGrace);
  server->Wait();
  return kExitOk;
}

}  // namespace quiver::sdk
