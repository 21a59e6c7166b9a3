#include "quiver/sdk/spark_codec.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include <arrow/ipc/message.h>
#include <arrow/ipc/reader.h>

#include "quiver/grpc_wire/wire_format.h"
#include "quiver/io/chunked_input_stream.h"
#include "quiver/protocol/batch_codec.h"

namespace quiver::sdk {
namespace {

// Protobuf wire-format tags of the two nested length-delimited `data` fields:
// UdfRequest.data / UdfResponse.data (2), DataRequest.data / DataResponse.data (1).
constexpr uint8_t kOuterDataTag = (2 << 3) | 2;
constexpr uint8_t kInnerDataTag = (1 << 3) | 2;
// An encapsulated IPC message starts with 0xFFFFFFFF and the metadata's length.
constexpr uint32_t kContinuation = 0xFFFFFFFFu;

// Reads the hand-written shape UdfRequest{data{data}} across the slices of a
// message; anything else (other fields, another order) is left to protobuf.
class DataRequestReader {
 public:
  explicit DataRequestReader(std::vector<grpc::Slice> slices) : slices_(std::move(slices)) {}

  // Returns the data's pieces, or nullopt when the message has another shape.
  std::optional<SparkRequest> Read() {
    SparkRequest request;
    if (Byte() != kOuterDataTag) return std::nullopt;
    const auto outer = Varint();
    if (!outer) return std::nullopt;
    const uint64_t outer_end = consumed_ + *outer;
    if (*outer > 0) {
      if (Byte() != kInnerDataTag) return std::nullopt;
      const auto inner = Varint();
      if (!inner || consumed_ + *inner != outer_end) return std::nullopt;
      if (!Take(*inner, &request.data)) return std::nullopt;
      request.data_size = *inner;
    }
    if (!AtEnd()) return std::nullopt;
    return request;
  }

 private:
  std::optional<uint8_t> Byte() {
    SkipEmpty();
    if (index_ == slices_.size()) return std::nullopt;
    ++consumed_;
    return slices_[index_].begin()[offset_++];
  }

  std::optional<uint64_t> Varint() {
    uint64_t value = 0;
    for (size_t i = 0; i < grpc_wire::kMaxVarintSize; ++i) {
      const auto byte = Byte();
      if (!byte) return std::nullopt;
      value |= static_cast<uint64_t>(*byte & 0x7f) << (7 * i);
      if ((*byte & 0x80) == 0) return value;
    }
    return std::nullopt;
  }

  bool Take(uint64_t length, std::vector<std::shared_ptr<arrow::Buffer>>* pieces) {
    while (length > 0) {
      SkipEmpty();
      if (index_ == slices_.size()) return false;
      const size_t take = std::min<size_t>(length, slices_[index_].size() - offset_);
      pieces->push_back(grpc_wire::BufferOfSlice(slices_[index_], offset_, take));
      offset_ += take;
      consumed_ += take;
      length -= take;
    }
    return true;
  }

  bool AtEnd() {
    SkipEmpty();
    return index_ == slices_.size();
  }

  void SkipEmpty() {
    while (index_ < slices_.size() && offset_ == slices_[index_].size()) {
      ++index_;
      offset_ = 0;
    }
  }

  std::vector<grpc::Slice> slices_;
  size_t index_ = 0;
  size_t offset_ = 0;
  uint64_t consumed_ = 0;
};

// Copies the first `length` bytes of `data` (across its pieces) into `out`;
// false when there are fewer.
bool CopyPrefix(const std::vector<std::shared_ptr<arrow::Buffer>>& data, size_t length,
                std::string* out) {
  out->clear();
  for (const auto& piece : data) {
    if (out->size() == length) break;
    const size_t take = std::min(length - out->size(), static_cast<size_t>(piece->size()));
    out->append(reinterpret_cast<const char*>(piece->data()), take);
  }
  return out->size() == length;
}

// Whether the first IPC message of `data` is a schema message (a stream) rather
// than a record batch or dictionary batch (a bare message).
arrow::Result<bool> StartsWithSchema(const std::vector<std::shared_ptr<arrow::Buffer>>& data) {
  std::string prefix;
  if (!CopyPrefix(data, 8, &prefix)) {
    return arrow::Status::Invalid("DataRequest.data is too short for an Arrow IPC message");
  }
  uint32_t words[2];
  std::memcpy(words, prefix.data(), sizeof(words));
  // The pre-1.0 form has no continuation marker: the length comes first.
  const bool continued = words[0] == kContinuation;
  const uint32_t length = continued ? words[1] : words[0];
  const size_t start = continued ? 8 : 4;
  std::string header;
  if (length == 0 || !CopyPrefix(data, start + length, &header)) {
    return arrow::Status::Invalid("DataRequest.data does not start with an Arrow IPC message");
  }
  auto metadata = arrow::Buffer::FromString(header.substr(start));
  auto message =
      arrow::ipc::Message::Open(std::move(metadata), std::make_shared<arrow::Buffer>(nullptr, 0));
  if (!message.ok()) {
    return arrow::Status::Invalid("DataRequest.data does not start with an Arrow IPC message: ",
                                  message.status().message());
  }
  return (*message)->type() == arrow::ipc::MessageType::SCHEMA;
}

}  // namespace

arrow::Result<SparkRequest> DecodeSparkRequest(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return arrow::Status::IOError("cannot read a gRPC message");
  if (!slices.empty() && slices.front().size() > 0 && slices.front().begin()[0] == kOuterDataTag) {
    if (auto request = DataRequestReader(slices).Read()) return *std::move(request);
  }
  grpc::Slice whole;
  if (!buffer.DumpToSingleSlice(&whole).ok()) {
    return arrow::Status::IOError("cannot read a gRPC message");
  }
  sparkpb::UdfRequest parsed;
  if (!parsed.ParseFromArray(whole.begin(), static_cast<int>(whole.size()))) {
    return arrow::Status::Invalid("a message on the Execute stream is not a UdfRequest");
  }
  SparkRequest request;
  switch (parsed.request_case()) {
    case sparkpb::UdfRequest::kControl:
      request.control = std::move(*parsed.mutable_control());
      return request;
    case sparkpb::UdfRequest::kData:
      request.data_size = parsed.data().data().size();
      request.data.push_back(
          arrow::Buffer::FromString(std::move(*parsed.mutable_data()->mutable_data())));
      return request;
    case sparkpb::UdfRequest::REQUEST_NOT_SET:
      break;
  }
  return arrow::Status::Invalid("a UdfRequest holds neither control nor data");
}

grpc::ByteBuffer EncodeSparkControl(const sparkpb::UdfControlResponse& control) {
  sparkpb::UdfResponse response;
  *response.mutable_control() = control;
  grpc::Slice slice(response.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

arrow::Result<grpc::ByteBuffer> EncodeSparkData(const arrow::RecordBatch& batch,
                                                uint64_t* ipc_bytes) {
  ARROW_ASSIGN_OR_RAISE(auto body, protocol::EncodeBatchStream(batch));
  uint64_t ipc_length = 0;
  for (const auto& buffer : body) ipc_length += static_cast<uint64_t>(buffer->size());
  std::string prefix;
  prefix.push_back(static_cast<char>(kOuterDataTag));
  grpc_wire::AppendVarint(1 + grpc_wire::VarintSize(ipc_length) + ipc_length, &prefix);
  prefix.push_back(static_cast<char>(kInnerDataTag));
  grpc_wire::AppendVarint(ipc_length, &prefix);
  *ipc_bytes = ipc_length;
  return grpc_wire::MessageOf(prefix, body);
}

arrow::Result<std::vector<std::shared_ptr<arrow::RecordBatch>>> DecodeSparkBatches(
    const std::vector<std::shared_ptr<arrow::Buffer>>& data,
    const std::shared_ptr<arrow::Buffer>& input_schema) {
  ARROW_ASSIGN_OR_RAISE(const bool stream, StartsWithSchema(data));
  auto input = std::make_shared<io::ChunkedInputStream>();
  // A bare record-batch message: the stream's schema is Init's.
  if (!stream) ARROW_RETURN_NOT_OK(input->Append(input_schema));
  for (const auto& piece : data) ARROW_RETURN_NOT_OK(input->Append(piece));
  input->Finish();
  auto reader = arrow::ipc::RecordBatchStreamReader::Open(input);
  if (!reader.ok()) {
    return arrow::Status::Invalid("DataRequest.data is not an Arrow IPC stream: ",
                                  reader.status().message());
  }
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    if (auto read = (*reader)->ReadNext(&batch); !read.ok()) {
      return arrow::Status::Invalid("DataRequest.data is not a valid Arrow IPC stream: ",
                                    input->ExplainFailure(read).message());
    }
    if (batch == nullptr) break;
    batches.push_back(std::move(batch));
  }
  if (batches.empty()) return arrow::Status::Invalid("DataRequest.data holds no record batch");
  return batches;
}

}  // namespace quiver::sdk
