#include "quiver/transport/grpc/grpc_connection.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include <grpc/grpc.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/sync_stream.h>

#include "quiver/grpc_wire/channel_arguments.h"
#include "quiver/transport/grpc/grpc_message_codec.h"

namespace quiver::transport::grpc_transport {
namespace {

constexpr char kExecuteMethod[] = "/quiver.v1.UdfWorker/Execute";
constexpr char kManageMethod[] = "/quiver.v1.UdfWorker/Manage";
constexpr char kSecretKey[] = "quiver-secret";

using ExecuteStream = grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;

arrow::Status FromGrpc(const grpc::Status& status, const std::string& what) {
  return arrow::Status::IOError(what, ": gRPC status ", static_cast<int>(status.error_code()), " ",
                                status.error_message());
}

// `probe`: a channel only for readiness probes, which must not inherit the
// connect backoff of earlier probes (gRPC's default starts at 1 s and grows):
// it gets its own subchannels and short reconnection pauses.
std::shared_ptr<grpc::Channel> MakeChannel(const GrpcTarget& target, const std::string& address,
                                           bool probe = false) {
  const grpc::ChannelArguments arguments = grpc_wire::WorkerChannelArguments(address, probe);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (target.tls_root_certificates.empty()) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = target.tls_root_certificates;
    credentials = grpc::SslCredentials(options);
  }
  return grpc::CreateCustomChannel(address, credentials, arguments);
}

arrow::Result<v1::ManageResponse> Manage(grpc::Channel* channel, const std::string& secret,
                                         const v1::ManageRequest& request,
                                         std::chrono::milliseconds timeout,
                                         bool wait_for_ready = true) {
  grpc::ClientContext context;
  context.AddMetadata(kSecretKey, secret);
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  // A worker that is still starting is waited for, up to the deadline.
  context.set_wait_for_ready(wait_for_ready);
  const grpc::internal::RpcMethod method(kManageMethod, grpc::internal::RpcMethod::NORMAL_RPC);
  v1::ManageResponse response;
  grpc::Status status =
      grpc::internal::BlockingUnaryCall(channel, method, &context, request, &response);
  if (!status.ok()) return FromGrpc(status, "Manage call to the worker failed");
  return response;
}

class GrpcConnection : public Connection {
 public:
  GrpcConnection(GrpcTarget target, std::shared_ptr<grpc::Channel> channel)
      : target_(std::move(target)), channel_(std::move(channel)) {}

  ~GrpcConnection() override {
    Shutdown();
    std::lock_guard<std::mutex> lock(mutex_);
    call_.reset();
  }

  arrow::Status SendControl(const v1::EngineMessage& message, io::Deadline deadline) override {
    // An Init opens the execution's call; a second Init in one execution goes
    // into the same call, where the worker must refuse it.
    if (message.has_init() && !InCall()) ARROW_RETURN_NOT_OK(StartCall());
    if ((message.has_heartbeat() || message.has_shutdown()) && !InCall()) {
      return ManageOutsideExecution(message);
    }
    ARROW_ASSIGN_OR_RAISE(auto bytes, EncodeEngineMessage(message));
    std::shared_ptr<Call> call = CurrentCall();
    if (call == nullptr) return arrow::Status::IOError("no execution is running on ", endpoint());
    arrow::Status written = Write(*call, bytes, deadline);
    if (message.has_finish() || message.has_cancel() || !written.ok()) {
      // The engine sends nothing more in this execution: half-close, and let
      // the receiving thread finish the call.
      if (written.ok()) call->stream->WritesDone();
      std::lock_guard<std::mutex> lock(call->mutex);
      call->writes_closed = true;
      call->writes_closed_signal.notify_all();
    }
    return written;
  }

  arrow::Status SendBatch(uint64_t sequence, const arrow::RecordBatch& batch,
                          io::Deadline deadline) override {
    ARROW_ASSIGN_OR_RAISE(auto bytes, EncodeDataMessage(sequence, batch));
    std::shared_ptr<Call> call = CurrentCall();
    if (call == nullptr) return arrow::Status::IOError("no execution is running on ", endpoint());
    return Write(*call, bytes, deadline);
  }

  arrow::Result<WorkerReply> Receive(io::Deadline) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!local_replies_.empty()) {
        WorkerReply reply = std::move(local_replies_.front());
        local_replies_.pop_front();
        return reply;
      }
    }
    std::shared_ptr<Call> call = CurrentCall();
    if (call == nullptr) return arrow::Status::IOError("no execution is running on ", endpoint());
    grpc::ByteBuffer bytes;
    if (!call->stream->Read(&bytes)) return EndCall(call, /*expected=*/false);
    ARROW_ASSIGN_OR_RAISE(WorkerReply reply, DecodeWorkerMessage(bytes, &copies_));
    if (reply.control &&
        (reply.control->has_finish_response() || reply.control->has_cancel_response())) {
      ARROW_RETURN_NOT_OK(EndCall(call, /*expected=*/true));
    }
    return reply;
  }

  void Shutdown() override {
    std::lock_guard<std::mutex> lock(mutex_);
    shut_down_ = true;
    if (call_ != nullptr) call_->context.TryCancel();
  }

  // A gRPC worker serves until told to stop: Manage(shutdown) is that request
  // (the worker drains and exits at once), where SIGTERM would cost it its stop grace.
  void Close(io::Deadline deadline) override {
    if (!InCall()) {
      v1::ManageRequest request;
      request.mutable_shutdown();
      const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (timeout.count() > 0) {
        (void)Manage(channel_.get(), target_.secret, request, timeout, /*wait_for_ready=*/false);
      }
    }
    Shutdown();
  }

  std::string endpoint() const override { return target_.endpoint; }

 private:
  // One Execute call: the context must outlive the stream. Shared, because the
  // sending thread may still be inside a write when the receiving thread sees
  // the execution's end and retires the call.
  struct Call {
    grpc::ClientContext context;
    std::unique_ptr<ExecuteStream> stream;
    std::mutex mutex;
    std::condition_variable writes_closed_signal;
    bool writes_closed = false;  // the sender half-closed or gave up
  };

  arrow::Status StartCall() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (shut_down_) return arrow::Status::IOError("the connection to ", endpoint(), " is closed");
    auto call = std::make_shared<Call>();
    call->context.AddMetadata(kSecretKey, target_.secret);
    const grpc::internal::RpcMethod method(kExecuteMethod,
                                           grpc::internal::RpcMethod::BIDI_STREAMING);
    call->stream.reset(
        grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
            channel_.get(), method, &call->context));
    call_ = std::move(call);
    return arrow::Status::OK();
  }

  bool InCall() {
    std::lock_guard<std::mutex> lock(mutex_);
    return call_ != nullptr;
  }

  std::shared_ptr<Call> CurrentCall() {
    std::lock_guard<std::mutex> lock(mutex_);
    return call_;
  }

  // Writes one message; a write that does not finish by `deadline` (the worker
  // stopped reading) cancels the call, which makes it fail.
  arrow::Status Write(Call& call, const grpc::ByteBuffer& bytes, io::Deadline deadline) {
    std::mutex done_mutex;
    std::condition_variable done_signal;
    bool done = false;
    std::thread watchdog([&] {
      std::unique_lock<std::mutex> lock(done_mutex);
      if (!done_signal.wait_until(lock, deadline, [&] { return done; })) call.context.TryCancel();
    });
    const bool written = call.stream->Write(bytes);
    {
      std::lock_guard<std::mutex> lock(done_mutex);
      done = true;
    }
    done_signal.notify_all();
    watchdog.join();
    if (!written) {
      return arrow::Status::IOError("the worker at ", endpoint(),
                                    " stopped reading (the call was closed or timed out)");
    }
    return arrow::Status::OK();
  }

  // Finishes the Execute call; an end the protocol did not announce is a failure.
  arrow::Status EndCall(const std::shared_ptr<Call>& call, bool expected) {
    if (expected) {
      // gRPC's Finish must not race the sender's last write and half-close.
      std::unique_lock<std::mutex> lock(call->mutex);
      if (!call->writes_closed_signal.wait_for(lock, std::chrono::seconds(30),
                                               [&] { return call->writes_closed; })) {
        call->context.TryCancel();
      }
    } else {
      call->context.TryCancel();  // a sender blocked in a write returns at once
    }
    grpc::ByteBuffer extra;
    while (call->stream->Read(&extra)) {
    }
    grpc::Status status = call->stream->Finish();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (call_ == call) call_.reset();
    }
    if (expected && status.ok()) return arrow::Status::OK();
    if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      return FromGrpc(status, "the worker refused the call");
    }
    return FromGrpc(status, "the worker closed the connection");
  }

  arrow::Status ManageOutsideExecution(const v1::EngineMessage& message) {
    v1::ManageRequest request;
    if (message.has_heartbeat()) *request.mutable_heartbeat() = message.heartbeat();
    if (message.has_shutdown()) *request.mutable_shutdown() = message.shutdown();
    ARROW_ASSIGN_OR_RAISE(auto response, Manage(channel_.get(), target_.secret, request,
                                                std::chrono::milliseconds(10000)));
    WorkerReply reply;
    reply.control.emplace();
    if (response.has_heartbeat()) *reply.control->mutable_heartbeat() = response.heartbeat();
    if (response.has_shutdown()) *reply.control->mutable_shutdown() = response.shutdown();
    std::lock_guard<std::mutex> lock(mutex_);
    local_replies_.push_back(std::move(reply));
    return arrow::Status::OK();
  }

  GrpcTarget target_;
  std::shared_ptr<grpc::Channel> channel_;
  std::mutex mutex_;
  std::shared_ptr<Call> call_;
  std::deque<WorkerReply> local_replies_;
  bool shut_down_ = false;
  DecodeCopies copies_;
};

}  // namespace

arrow::Result<std::string> GrpcTargetOf(const std::string& endpoint) {
  constexpr std::string_view kUnix = "grpc+unix:";
  constexpr std::string_view kTcp = "grpc+tcp:";
  if (endpoint.rfind(kUnix, 0) == 0) return "unix:" + endpoint.substr(kUnix.size());
  if (endpoint.rfind(kTcp, 0) == 0) return endpoint.substr(kTcp.size());
  return arrow::Status::Invalid("'", endpoint,
                                "' is not a gRPC endpoint (grpc+unix:PATH or grpc+tcp:HOST:PORT)");
}

arrow::Result<uint32_t> PingGrpcWorker(const GrpcTarget& target,
                                       std::chrono::milliseconds timeout) {
  ARROW_ASSIGN_OR_RAISE(std::string address, GrpcTargetOf(target.endpoint));
  auto channel = MakeChannel(target, address, /*probe=*/true);
  v1::ManageRequest request;
  request.mutable_heartbeat()->set_nonce(1);
  ARROW_ASSIGN_OR_RAISE(auto response, Manage(channel.get(), target.secret, request, timeout));
  return response.worker().pid();
}

arrow::Result<std::unique_ptr<Connection>> ConnectGrpc(const GrpcTarget& target) {
  ARROW_ASSIGN_OR_RAISE(std::string address, GrpcTargetOf(target.endpoint));
  return std::make_unique<GrpcConnection>(target, MakeChannel(target, address));
}

}  // namespace quiver::transport::grpc_transport
