#include "quiver/conformance/grpc_manage.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/sync_stream.h>

#include "quiver/transport/grpc/grpc_message_codec.h"

namespace quiver::conformance {

namespace {

arrow::Result<std::string> TargetOf(const std::string& endpoint) {
  constexpr std::string_view kUnix = "grpc+unix:";
  constexpr std::string_view kTcp = "grpc+tcp:";
  if (endpoint.rfind(kUnix, 0) == 0) return "unix:" + endpoint.substr(kUnix.size());
  if (endpoint.rfind(kTcp, 0) == 0) return endpoint.substr(kTcp.size());
  return arrow::Status::Invalid("'", endpoint, "' is not a gRPC endpoint");
}

}  // namespace

arrow::Result<ManageOutcome> CallManage(const std::string& endpoint,
                                        const std::optional<std::string>& secret,
                                        const v1::ManageRequest& request,
                                        std::chrono::milliseconds timeout) {
  ARROW_ASSIGN_OR_RAISE(auto target, TargetOf(endpoint));
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  if (secret) context.AddMetadata("quiver-secret", *secret);
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  const grpc::internal::RpcMethod method("/quiver.v1.UdfWorker/Manage",
                                         grpc::internal::RpcMethod::NORMAL_RPC);
  ManageOutcome outcome;
  grpc::Status status = grpc::internal::BlockingUnaryCall(channel.get(), method, &context, request,
                                                          &outcome.response);
  outcome.code = static_cast<int>(status.error_code());
  outcome.message = status.error_message();
  return outcome;
}

arrow::Result<ExecuteOutcome> CallExecute(const std::string& endpoint,
                                          const std::optional<std::string>& secret,
                                          const std::vector<ExecuteRequest>& requests,
                                          std::chrono::milliseconds timeout) {
  namespace codec = transport::grpc_transport;
  ARROW_ASSIGN_OR_RAISE(auto target, TargetOf(endpoint));
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  if (secret) context.AddMetadata("quiver-secret", *secret);
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  const grpc::internal::RpcMethod method("/quiver.v1.UdfWorker/Execute",
                                         grpc::internal::RpcMethod::BIDI_STREAMING);
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel.get(), method, &context));
  // The requests are few and small: written before any answer is read, they
  // cannot fill the flow-control windows.
  for (const auto& request : requests) {
    ARROW_ASSIGN_OR_RAISE(auto bytes,
                          request.batch != nullptr
                              ? codec::EncodeDataMessage(request.sequence, *request.batch)
                              : codec::EncodeEngineMessage(request.control));
    if (!stream->Write(bytes)) break;  // the worker ended the call; Finish says how
  }
  stream->WritesDone();
  ExecuteOutcome outcome;
  grpc::ByteBuffer bytes;
  codec::DecodeCopies copies;
  while (stream->Read(&bytes)) {
    ARROW_ASSIGN_OR_RAISE(auto reply, codec::DecodeWorkerMessage(bytes, &copies));
    outcome.replies.push_back(std::move(reply));
  }
  grpc::Status status = stream->Finish();
  outcome.code = static_cast<int>(status.error_code());
  outcome.message = status.error_message();
  return outcome;
}

}  // namespace quiver::conformance
