#include "quiver/conformance/grpc_manage.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/security/credentials.h>

namespace quiver::conformance {

arrow::Result<ManageOutcome> CallManage(const std::string& endpoint,
                                        const std::optional<std::string>& secret,
                                        const v1::ManageRequest& request,
                                        std::chrono::milliseconds timeout) {
  constexpr std::string_view kUnix = "grpc+unix:";
  constexpr std::string_view kTcp = "grpc+tcp:";
  std::string target;
  if (endpoint.rfind(kUnix, 0) == 0) {
    target = "unix:" + endpoint.substr(kUnix.size());
  } else if (endpoint.rfind(kTcp, 0) == 0) {
    target = endpoint.substr(kTcp.size());
  } else {
    return arrow::Status::Invalid("'", endpoint, "' is not a gRPC endpoint");
  }
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

}  // namespace quiver::conformance
