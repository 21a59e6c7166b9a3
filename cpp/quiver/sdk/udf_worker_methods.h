#pragma once

// The two methods of a UdfWorker service, quiver.v1's and Spark's alike:
// Execute, a bidirectional stream of raw (hand-encoded) messages, and Manage, a
// unary call with protobuf messages.

#include <array>

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/method_handler.h>

namespace quiver::sdk {

/// The Execute and Manage methods of `service` (its member functions `Execute`
/// and `Manage`), named `execute_method` and `manage_method`, for the service's
/// constructor to add (grpc::Service::AddMethod takes ownership).
template <typename Service, typename ManageRequest, typename ManageResponse>
std::array<grpc::internal::RpcServiceMethod*, 2> UdfWorkerMethods(Service* service,
                                                                  const char* execute_method,
                                                                  const char* manage_method) {
  using Execute = grpc::internal::BidiStreamingHandler<Service, grpc::ByteBuffer, grpc::ByteBuffer>;
  using Manage = grpc::internal::RpcMethodHandler<Service, ManageRequest, ManageResponse,
                                                  google::protobuf::MessageLite,
                                                  google::protobuf::MessageLite>;
  return {new grpc::internal::RpcServiceMethod(execute_method,
                                               grpc::internal::RpcMethod::BIDI_STREAMING,
                                               new Execute(&Service::Execute, service)),
          new grpc::internal::RpcServiceMethod(manage_method, grpc::internal::RpcMethod::NORMAL_RPC,
                                               new Manage(&Service::Manage, service))};
}

}  // namespace quiver::sdk
