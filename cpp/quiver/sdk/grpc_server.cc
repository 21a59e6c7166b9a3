#include "quiver/sdk/grpc_server.h"

#include <chrono>
#include <climits>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <utility>

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/method_handler.h>

#include "quiver/sdk/grpc_endpoint.h"
#include "quiver/sdk/grpc_execute_call.h"
#include "quiver/sdk/hello.h"
#include "quiver/sdk/log.h"
#include "quiver/sdk/stop_watcher.h"
#include "quiver/sdk/udf_worker_methods.h"

namespace quiver::sdk {
namespace {

constexpr char kExecuteMethod[] = "/quiver.v1.UdfWorker/Execute";
constexpr char kManageMethod[] = "/quiver.v1.UdfWorker/Manage";
constexpr char kSecretKey[] = "quiver-secret";
// How long a stop waits for a running execution to answer CancelResponse: a UDF
// is stopped only between batches, and one stuck in a batch must not keep the worker.
constexpr std::chrono::seconds kCancelWait{10};
// How long a stopping server lets calls still in progress end.
constexpr std::chrono::seconds kStopGrace{2};

enum class StopMode { kNone, kGraceful, kCancel };

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    difference |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return difference == 0;
}

// The UdfWorker service: Execute (one execution per call, one at a time) and Manage.
class WorkerService : public grpc::Service {
 public:
  WorkerService(const std::string& worker_id, std::string secret, const Registry* registry)
      : hello_(MakeHello(worker_id, "")), secret_(std::move(secret)), registry_(registry) {
    for (auto* method : UdfWorkerMethods<WorkerService, v1::ManageRequest, v1::ManageResponse>(
             this, kExecuteMethod, kManageMethod)) {
      AddMethod(method);
    }
  }

  grpc::Status Execute(grpc::ServerContext* context, ExecuteStream* stream) {
    if (!Authorized(context, "Execute")) return Unauthenticated();
    ExecuteCall call(context, stream, registry_);
    {
      // A worker serves one execution at a time; a second call waits for the first.
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [this] { return running_ == nullptr || stop_ != StopMode::kNone; });
      if (stop_ != StopMode::kNone) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the worker is shutting down");
      }
      running_ = &call;
    }
    grpc::Status status = call.Run();
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = nullptr;
    changed_.notify_all();
    return status;
  }

  grpc::Status Manage(grpc::ServerContext* context, const v1::ManageRequest* request,
                      v1::ManageResponse* response) {
    if (!Authorized(context, "Manage")) return Unauthenticated();
    if (request->has_heartbeat()) {
      response->mutable_heartbeat()->set_nonce(request->heartbeat().nonce());
    } else if (request->has_shutdown()) {
      const bool cancel = request->shutdown().cancel_running();
      response->mutable_shutdown()->set_cancel_running(cancel);
      RequestStop(cancel ? StopMode::kCancel : StopMode::kGraceful, "Shutdown");
    } else {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a ManageRequest holds no request");
    }
    *response->mutable_worker() = hello_;
    std::lock_guard<std::mutex> lock(mutex_);
    response->set_refused_calls(refused_calls_);
    return grpc::Status::OK;
  }

  // Asks the worker to stop; kCancel also cancels the running execution.
  void RequestStop(StopMode mode, const std::string& reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (mode <= stop_) return;
    stop_ = mode;
    stop_reason_ = reason;
    changed_.notify_all();
  }

  // Waits for a stop request, then for the running execution to end (cancelling
  // it when asked to); returns the reason of the stop.
  std::string WaitForStop() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return stop_ != StopMode::kNone; });
    // Without cancel_running a running execution may finish, unless a later
    // request (SIGTERM, the engine's death) asks to cancel it.
    changed_.wait(lock, [this] { return running_ == nullptr || stop_ == StopMode::kCancel; });
    if (running_ != nullptr) {
      running_->RequestStop(stop_reason_);
      changed_.wait_for(lock, kCancelWait, [this] { return running_ == nullptr; });
    }
    return stop_reason_;
  }

 private:
  bool Authorized(grpc::ServerContext* context, const char* call) {
    const auto& metadata = context->client_metadata();
    auto found = metadata.find(kSecretKey);
    if (found != metadata.end() &&
        ConstantTimeEquals(std::string(found->second.data(), found->second.size()), secret_)) {
      return true;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    ++refused_calls_;
    Log(LogLevel::kWarning, std::string("refused a ") + call + " call from " + context->peer() +
                                ": missing or wrong " + kSecretKey);
    return false;
  }

  static grpc::Status Unauthenticated() {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing or wrong quiver-secret metadata");
  }

  const v1::Hello hello_;
  const std::string secret_;
  const Registry* registry_;
  std::mutex mutex_;
  std::condition_variable changed_;
  ExecuteCall* running_ = nullptr;
  StopMode stop_ = StopMode::kNone;
  std::string stop_reason_;
  uint64_t refused_calls_ = 0;
};

}  // namespace

int ServeGrpc(const WorkerOptions& options, const std::string& secret, const Registry& registry) {
  auto endpoint = ParseGrpcEndpoint(options.connection);
  if (!endpoint.ok()) {
    Log(LogLevel::kError, endpoint.status().message());
    return kExitUsage;
  }
  auto credentials = ServerCredentialsFor(options, endpoint->local);
  if (!credentials.ok()) {
    Log(LogLevel::kError, credentials.status().message());
    return kExitUsage;
  }
  WorkerService service(options.id, secret, &registry);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(endpoint->address, *credentials, &port);
  builder.RegisterService(&service);
  // quiver enforces its own limits; gRPC's 4 MiB default would cut batches.
  builder.SetMaxReceiveMessageSize(INT_MAX);
  builder.SetMaxSendMessageSize(INT_MAX);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || (endpoint->tcp && port == 0)) {
    Log(LogLevel::kError, "cannot serve grpc on " + options.connection);
    return kExitConnectionLost;
  }
  AnnounceServing(options, "grpc");
  auto watcher = StopWatcher::Start(/*watch_parent=*/true, [&service](const std::string& reason) {
    service.RequestStop(StopMode::kCancel, reason);
  });
  if (!watcher.ok()) {
    Log(LogLevel::kError, watcher.status().ToString());
    return kExitConnectionLost;
  }
  Log(LogLevel::kInfo, service.WaitForStop() + ": exiting");
  server->Shutdown(std::chrono::system_clock::now() + kStopGrace);
  server->Wait();
  return kExitOk;
}

}  // namespace quiver::sdk
