#include "quiver/transport/spark/spark_client.h"

#include <array>
#include <cstdlib>
#include <utility>

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "quiver/grpc_wire/channel_arguments.h"

namespace quiver::transport::spark {
namespace {

constexpr char kExecuteMethod[] = "/org.apache.spark.udf.worker.UdfWorker/Execute";
constexpr char kManageMethod[] = "/org.apache.spark.udf.worker.UdfWorker/Manage";

bool IsPort(const std::string& text) {
  if (text.empty() || text.size() > 5) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t n = 0; n < 256; ++n) {
    uint32_t c = n;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[n] = c;
  }
  return table;
}

}  // namespace

std::string SparkAddress(const std::string& connection) {
  if (IsPort(connection)) return "127.0.0.1:" + connection;
  return "unix:" + connection;
}

std::shared_ptr<grpc::Channel> MakeSparkChannel(const std::string& address, bool probe) {
  const grpc::ChannelArguments arguments = grpc_wire::WorkerChannelArguments(address, probe);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), arguments);
}

ManageReply CallSparkManage(grpc::Channel* channel, const proto::WorkerRequest& request,
                            std::chrono::milliseconds timeout, bool wait_for_ready) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  context.set_wait_for_ready(wait_for_ready);
  const grpc::internal::RpcMethod method(kManageMethod, grpc::internal::RpcMethod::NORMAL_RPC);
  ManageReply reply;
  grpc::Status status =
      grpc::internal::BlockingUnaryCall(channel, method, &context, request, &reply.response);
  reply.code = status.error_code();
  reply.message = status.error_message();
  return reply;
}

arrow::Result<int64_t> PingSparkWorker(grpc::Channel* channel, std::chrono::milliseconds timeout) {
  proto::WorkerRequest request;
  request.mutable_heartbeat();
  ManageReply reply = CallSparkManage(channel, request, timeout);
  if (reply.code != grpc::StatusCode::OK) {
    return arrow::Status::IOError("Manage(Heartbeat) failed: gRPC status ",
                                  static_cast<int>(reply.code), " ", reply.message);
  }
  if (!reply.response.has_heartbeat()) {
    return arrow::Status::IOError(
        "the worker answered Manage(Heartbeat) without a HeartbeatResponse (protocol violation)");
  }
  const auto& metrics = reply.response.heartbeat().metrics();
  auto pid = metrics.find("pid");
  if (pid == metrics.end()) {
    return arrow::Status::IOError(
        "the worker's HeartbeatResponse has no metrics[\"pid\"], which docs/spark-protocol.md "
        "section 1 requires");
  }
  char* end = nullptr;
  const long long value = std::strtoll(pid->second.c_str(), &end, 10);
  if (pid->second.empty() || *end != '\0' || value <= 0) {
    return arrow::Status::IOError("the worker's HeartbeatResponse metrics[\"pid\"] is '",
                                  pid->second, "', not a process id");
  }
  return static_cast<int64_t>(value);
}

ExecuteCall::ExecuteCall(grpc::Channel* channel, std::optional<std::chrono::milliseconds> timeout) {
  if (timeout) context_.set_deadline(std::chrono::system_clock::now() + *timeout);
  const grpc::internal::RpcMethod method(kExecuteMethod, grpc::internal::RpcMethod::BIDI_STREAMING);
  stream_.reset(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel, method, &context_));
}

ExecuteCall::~ExecuteCall() {
  if (finished_) return;
  Cancel();
  grpc::ByteBuffer ignored;
  while (stream_->Read(&ignored)) {
  }
  (void)stream_->Finish();
}

bool ExecuteCall::Write(const grpc::ByteBuffer& bytes) {
  std::lock_guard<std::mutex> lock(write_mutex_);
  if (writes_done_) return false;
  return stream_->Write(bytes);
}

bool ExecuteCall::Write(const proto::UdfRequest& request) {
  return Write(SerializeRequest(request));
}

void ExecuteCall::WritesDone() {
  std::lock_guard<std::mutex> lock(write_mutex_);
  if (writes_done_) return;
  writes_done_ = true;
  stream_->WritesDone();
}

bool ExecuteCall::ReadRaw(grpc::ByteBuffer* bytes) { return stream_->Read(bytes); }

arrow::Result<std::optional<proto::UdfResponse>> ExecuteCall::Read() {
  grpc::ByteBuffer bytes;
  if (!stream_->Read(&bytes)) return std::nullopt;
  grpc::Slice whole;
  if (!bytes.DumpToSingleSlice(&whole).ok()) {
    return arrow::Status::IOError("cannot read a gRPC message");
  }
  proto::UdfResponse response;
  if (!response.ParseFromArray(whole.begin(), static_cast<int>(whole.size()))) {
    return arrow::Status::IOError(
        "a message that is not an org.apache.spark.udf.worker.UdfResponse");
  }
  return response;
}

grpc::Status ExecuteCall::Finish() {
  finished_ = true;
  return stream_->Finish();
}

void ExecuteCall::Cancel() { context_.TryCancel(); }

grpc::ByteBuffer SerializeRequest(const proto::UdfRequest& request) {
  std::string bytes = request.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

uint32_t Crc32(std::string_view bytes) {
  static const std::array<uint32_t, 256> kTable = MakeCrcTable();
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : bytes) crc = kTable[(crc ^ byte) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

}  // namespace quiver::transport::spark
