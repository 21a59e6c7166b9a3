#include "quiver/transport/spark/spark_data.h"

#include <utility>
#include <vector>

#include <arrow/buffer.h>

#include "quiver/grpc_wire/wire_format.h"
#include "quiver/protocol/batch_codec.h"

namespace quiver::transport::spark {
namespace {

// Protobuf wire-format tags of the two length-delimited fields written by hand.
constexpr char kUdfRequestDataTag = (2 << 3) | 2;   // UdfRequest.data
constexpr char kDataRequestDataTag = (1 << 3) | 2;  // DataRequest.data

}  // namespace

arrow::Result<grpc::ByteBuffer> EncodeDataRequest(const arrow::RecordBatch& batch) {
  ARROW_ASSIGN_OR_RAISE(auto body, protocol::EncodeBatchStream(batch));
  uint64_t ipc_length = 0;
  for (const auto& buffer : body) ipc_length += static_cast<uint64_t>(buffer->size());
  const uint64_t request_length = 1 + grpc_wire::VarintSize(ipc_length) + ipc_length;
  std::string prefix;
  prefix.push_back(kUdfRequestDataTag);
  grpc_wire::AppendVarint(request_length, &prefix);
  prefix.push_back(kDataRequestDataTag);
  grpc_wire::AppendVarint(ipc_length, &prefix);
  return grpc_wire::MessageOf(prefix, body);
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> DecodeDataResponse(std::string data) {
  if (data.empty()) return arrow::Status::Invalid("it is empty");
  return protocol::DecodeBatchStream(arrow::Buffer::FromString(std::move(data)));
}

}  // namespace quiver::transport::spark
