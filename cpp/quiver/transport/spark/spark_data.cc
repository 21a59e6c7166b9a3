#include "quiver/transport/spark/spark_data.h"

#include <utility>
#include <vector>

#include <arrow/buffer.h>

#include "quiver/protocol/batch_codec.h"

namespace quiver::transport::spark {
namespace {

// Protobuf wire-format tags of the two length-delimited fields written by hand.
constexpr char kUdfRequestDataTag = (2 << 3) | 2;   // UdfRequest.data
constexpr char kDataRequestDataTag = (1 << 3) | 2;  // DataRequest.data

size_t VarintSize(uint64_t value) {
  size_t size = 1;
  for (; value >= 0x80; value >>= 7) ++size;
  return size;
}

void AppendVarint(uint64_t value, std::string* out) {
  for (; value >= 0x80; value >>= 7) out->push_back(static_cast<char>((value & 0x7f) | 0x80));
  out->push_back(static_cast<char>(value));
}

// A grpc::Slice that keeps an Arrow buffer alive for as long as gRPC needs it.
grpc::Slice SliceOf(const std::shared_ptr<arrow::Buffer>& buffer) {
  auto* owner = new std::shared_ptr<arrow::Buffer>(buffer);
  return grpc::Slice(
      const_cast<uint8_t*>(buffer->data()), static_cast<size_t>(buffer->size()),
      [](void* user_data) { delete static_cast<std::shared_ptr<arrow::Buffer>*>(user_data); },
      owner);
}

}  // namespace

arrow::Result<grpc::ByteBuffer> EncodeDataRequest(const arrow::RecordBatch& batch) {
  ARROW_ASSIGN_OR_RAISE(auto body, protocol::EncodeBatchStream(batch));
  uint64_t ipc_length = 0;
  for (const auto& buffer : body) ipc_length += static_cast<uint64_t>(buffer->size());
  const uint64_t request_length = 1 + VarintSize(ipc_length) + ipc_length;
  std::string prefix;
  prefix.push_back(kUdfRequestDataTag);
  AppendVarint(request_length, &prefix);
  prefix.push_back(kDataRequestDataTag);
  AppendVarint(ipc_length, &prefix);
  std::vector<grpc::Slice> slices;
  slices.reserve(body.size() + 1);
  slices.emplace_back(prefix);
  for (const auto& buffer : body) {
    if (buffer->size() > 0) slices.push_back(SliceOf(buffer));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> DecodeDataResponse(std::string data) {
  if (data.empty()) return arrow::Status::Invalid("it is empty");
  return protocol::DecodeBatchStream(arrow::Buffer::FromString(std::move(data)));
}

}  // namespace quiver::transport::spark
