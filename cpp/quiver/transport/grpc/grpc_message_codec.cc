#include "quiver/transport/grpc/grpc_message_codec.h"

#include <string>
#include <utility>
#include <vector>

#include <arrow/buffer.h>

#include "quiver/io/chunked_input_stream.h"
#include "quiver/protocol/batch_codec.h"

namespace quiver::transport::grpc_transport {
namespace {

// Protobuf wire-format tags of the fields written and parsed by hand.
constexpr uint8_t kEngineDataTag = (3 << 3) | 2;  // EngineMessage.data
constexpr uint8_t kWorkerDataTag = (3 << 3) | 2;  // WorkerMessage.data
constexpr uint8_t kSequenceTag = (1 << 3) | 0;    // Data.sequence
constexpr uint8_t kArrowIpcTag = (2 << 3) | 2;    // Data.arrow_ipc

void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

// Writes `value` as a varint of exactly `size` bytes (>= its minimal size):
// protobuf accepts redundant continuation bytes, which lets the Arrow bytes
// that follow start at a multiple of 8 into the message.
void AppendPaddedVarint(uint64_t value, size_t size, std::string* out) {
  for (size_t i = 0; i + 1 < size; ++i) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value & 0x7f));
}

size_t VarintSize(uint64_t value) {
  size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

// A grpc::Slice that keeps an Arrow buffer alive for as long as gRPC needs it.
grpc::Slice SliceOf(const std::shared_ptr<arrow::Buffer>& buffer) {
  auto* owner = new std::shared_ptr<arrow::Buffer>(buffer);
  return grpc::Slice(
      const_cast<uint8_t*>(buffer->data()), static_cast<size_t>(buffer->size()),
      [](void* user_data) { delete static_cast<std::shared_ptr<arrow::Buffer>*>(user_data); },
      owner);
}

// Holds the slice of a GrpcSliceBuffer; a base class, so it is built before the
// Buffer that points into it.
struct SliceHolder {
  grpc::Slice held;
};

// An Arrow buffer over part of a received grpc::Slice, holding a reference to it.
// Small slices keep their bytes inline, so the data pointer must come from the
// slice this object owns, not from the one it was copied from.
class GrpcSliceBuffer : private SliceHolder, public arrow::Buffer {
 public:
  GrpcSliceBuffer(grpc::Slice slice, size_t offset, size_t length)
      : SliceHolder{std::move(slice)},
        arrow::Buffer(held.begin() + offset, static_cast<int64_t>(length)) {}
};

// Reads protobuf wire format across the slices of a received message.
class SliceCursor {
 public:
  explicit SliceCursor(std::vector<grpc::Slice> slices) : slices_(std::move(slices)) {}

  bool AtEnd() {
    SkipEmpty();
    return index_ == slices_.size();
  }

  arrow::Result<uint64_t> ReadVarint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      SkipEmpty();
      if (index_ == slices_.size()) return Truncated();
      const uint8_t byte = slices_[index_].begin()[offset_++];
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    return arrow::Status::IOError("malformed varint in a message from the worker");
  }

  // Takes `length` bytes as Arrow buffers over the slices (no copy).
  arrow::Result<std::vector<std::shared_ptr<arrow::Buffer>>> Take(uint64_t length) {
    std::vector<std::shared_ptr<arrow::Buffer>> pieces;
    while (length > 0) {
      SkipEmpty();
      if (index_ == slices_.size()) return Truncated();
      const size_t take = std::min<size_t>(length, slices_[index_].size() - offset_);
      pieces.push_back(std::make_shared<GrpcSliceBuffer>(slices_[index_], offset_, take));
      offset_ += take;
      length -= take;
    }
    return pieces;
  }

 private:
  void SkipEmpty() {
    while (index_ < slices_.size() && offset_ == slices_[index_].size()) {
      ++index_;
      offset_ = 0;
    }
  }
  static arrow::Status Truncated() {
    return arrow::Status::IOError("a message from the worker ends in the middle of a field");
  }

  std::vector<grpc::Slice> slices_;
  size_t index_ = 0;
  size_t offset_ = 0;
};

arrow::Result<WorkerReply> DecodeBatch(const std::vector<std::shared_ptr<arrow::Buffer>>& ipc,
                                       uint64_t sequence, DecodeCopies* copies) {
  auto stream = std::make_shared<io::ChunkedInputStream>();
  for (const auto& piece : ipc) ARROW_RETURN_NOT_OK(stream->Append(piece));
  stream->Finish();
  auto batch = protocol::DecodeBatchStream(stream);
  if (!batch.ok()) {
    return stream->ExplainFailure(batch.status())
        .WithMessage("the worker sent a result for batch ", sequence,
                     " that is not a valid Arrow IPC stream: ", batch.status().message());
  }
  copies->bytes_copied += stream->bytes_copied();
  WorkerReply reply;
  reply.sequence = sequence;
  reply.batch = std::move(batch).ValueUnsafe();
  return reply;
}

// Parses the body of WorkerMessage.data (a Data message) of `length` bytes.
arrow::Result<WorkerReply> DecodeData(SliceCursor* cursor, DecodeCopies* copies) {
  ARROW_ASSIGN_OR_RAISE(uint64_t length, cursor->ReadVarint());
  (void)length;  // Data is the only field of this envelope: it runs to the end.
  uint64_t sequence = 0;
  std::vector<std::shared_ptr<arrow::Buffer>> ipc;
  while (!cursor->AtEnd()) {
    ARROW_ASSIGN_OR_RAISE(uint64_t tag, cursor->ReadVarint());
    if (tag == kSequenceTag) {
      ARROW_ASSIGN_OR_RAISE(sequence, cursor->ReadVarint());
    } else if (tag == kArrowIpcTag) {
      ARROW_ASSIGN_OR_RAISE(uint64_t size, cursor->ReadVarint());
      ARROW_ASSIGN_OR_RAISE(ipc, cursor->Take(size));
    } else {
      return arrow::Status::IOError("unexpected field tag ", tag, " in a Data message");
    }
  }
  return DecodeBatch(ipc, sequence, copies);
}

}  // namespace

arrow::Result<grpc::ByteBuffer> EncodeEngineMessage(const v1::EngineMessage& message) {
  std::string bytes = message.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

arrow::Result<grpc::ByteBuffer> EncodeDataMessage(uint64_t sequence,
                                                  const arrow::RecordBatch& batch) {
  ARROW_ASSIGN_OR_RAISE(auto body, protocol::EncodeBatchStream(batch));
  uint64_t ipc_length = 0;
  for (const auto& buffer : body) ipc_length += static_cast<uint64_t>(buffer->size());
  // The receiver reads Arrow buffers in place only when they are aligned: pad
  // the sequence number so that the prefix is a multiple of 8 bytes long.
  size_t sequence_size = VarintSize(sequence);
  uint64_t data_length = 0;
  for (size_t size = sequence_size; size <= 10; ++size) {
    data_length = 1 + size + 1 + VarintSize(ipc_length) + ipc_length;
    const size_t prefix_size = 1 + VarintSize(data_length) + data_length - ipc_length;
    sequence_size = size;
    if (prefix_size % 8 == 0) break;
  }
  std::string prefix;
  prefix.push_back(static_cast<char>(kEngineDataTag));
  AppendVarint(data_length, &prefix);
  prefix.push_back(static_cast<char>(kSequenceTag));
  AppendPaddedVarint(sequence, sequence_size, &prefix);
  prefix.push_back(static_cast<char>(kArrowIpcTag));
  AppendVarint(ipc_length, &prefix);
  std::vector<grpc::Slice> slices;
  slices.reserve(body.size() + 1);
  slices.emplace_back(prefix);
  for (const auto& buffer : body) {
    if (buffer->size() > 0) slices.push_back(SliceOf(buffer));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

arrow::Result<WorkerReply> DecodeWorkerMessage(const grpc::ByteBuffer& buffer,
                                               DecodeCopies* copies) {
  copies->messages += 1;
  copies->bytes_received += static_cast<int64_t>(buffer.Length());
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return arrow::Status::IOError("cannot read a gRPC message");
  if (!slices.empty() && slices.front().size() > 0 && slices.front().begin()[0] == kWorkerDataTag) {
    SliceCursor cursor(std::move(slices));
    ARROW_RETURN_NOT_OK(cursor.ReadVarint().status());  // the tag
    return DecodeData(&cursor, copies);
  }
  grpc::Slice whole;
  if (!buffer.DumpToSingleSlice(&whole).ok()) {
    return arrow::Status::IOError("cannot read a gRPC message");
  }
  copies->bytes_copied += static_cast<int64_t>(slices.size() > 1 ? whole.size() : 0);
  WorkerReply reply;
  reply.control.emplace();
  if (!reply.control->ParseFromArray(whole.begin(), static_cast<int>(whole.size()))) {
    return arrow::Status::IOError(
        "the worker sent a message that is not a quiver.v1.WorkerMessage");
  }
  return reply;
}

}  // namespace quiver::transport::grpc_transport
