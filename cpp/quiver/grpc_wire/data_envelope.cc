#include "quiver/grpc_wire/data_envelope.h"

#include <algorithm>
#include <string>
#include <utility>

#include "quiver/grpc_wire/wire_format.h"
#include "quiver/protocol/batch_codec.h"

namespace quiver::grpc_wire {
namespace {

// Protobuf wire-format tags of the fields written and parsed by hand.
constexpr uint8_t kDataTag = (3 << 3) | 2;       // EngineMessage.data, WorkerMessage.data
constexpr uint64_t kSequenceTag = (1 << 3) | 0;  // Data.sequence
constexpr uint64_t kArrowIpcTag = (2 << 3) | 2;  // Data.arrow_ipc
// Reads protobuf wire format across the slices of a received message.
class SliceCursor {
 public:
  explicit SliceCursor(std::vector<grpc::Slice> slices) : slices_(std::move(slices)) {}

  uint64_t consumed() const { return consumed_; }

  bool AtEnd() {
    SkipEmpty();
    return index_ == slices_.size();
  }

  arrow::Result<uint64_t> ReadVarint() {
    uint64_t value = 0;
    for (size_t i = 0; i < kMaxVarintSize; ++i) {
      SkipEmpty();
      if (index_ == slices_.size()) return Truncated();
      const uint8_t byte = slices_[index_].begin()[offset_++];
      ++consumed_;
      value |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
      if ((byte & 0x80) == 0) return value;
    }
    return arrow::Status::Invalid("a varint longer than 10 bytes");
  }

  // Takes `length` bytes as Arrow buffers over the slices (no copy); skips them
  // when `pieces` is null.
  arrow::Status Take(uint64_t length, std::vector<std::shared_ptr<arrow::Buffer>>* pieces) {
    while (length > 0) {
      SkipEmpty();
      if (index_ == slices_.size()) return Truncated();
      const size_t take = std::min<size_t>(length, slices_[index_].size() - offset_);
      if (pieces != nullptr) {
        pieces->push_back(BufferOfSlice(slices_[index_], offset_, take));
      }
      offset_ += take;
      consumed_ += take;
      length -= take;
    }
    return arrow::Status::OK();
  }

 private:
  void SkipEmpty() {
    while (index_ < slices_.size() && offset_ == slices_[index_].size()) {
      ++index_;
      offset_ = 0;
    }
  }
  static arrow::Status Truncated() {
    return arrow::Status::Invalid("the message ends in the middle of a field");
  }

  std::vector<grpc::Slice> slices_;
  size_t index_ = 0;
  size_t offset_ = 0;
  uint64_t consumed_ = 0;
};

// Skips a field of `wire_type` that this codec does not read.
arrow::Status SkipField(SliceCursor* cursor, uint64_t wire_type) {
  switch (wire_type) {
    case 0:
      return cursor->ReadVarint().status();
    case 1:
      return cursor->Take(8, nullptr);
    case 2: {
      ARROW_ASSIGN_OR_RAISE(uint64_t length, cursor->ReadVarint());
      return cursor->Take(length, nullptr);
    }
    case 5:
      return cursor->Take(4, nullptr);
    default:
      return arrow::Status::Invalid("a field of unknown wire type ", wire_type);
  }
}

// Parses the Data message whose tag was read: its length, then its fields.
arrow::Status DecodeData(SliceCursor* cursor, DataEnvelope* envelope) {
  ARROW_ASSIGN_OR_RAISE(uint64_t length, cursor->ReadVarint());
  const uint64_t end = cursor->consumed() + length;
  while (cursor->consumed() < end) {
    ARROW_ASSIGN_OR_RAISE(uint64_t tag, cursor->ReadVarint());
    if (tag == kSequenceTag) {
      ARROW_ASSIGN_OR_RAISE(envelope->sequence, cursor->ReadVarint());
    } else if (tag == kArrowIpcTag) {
      ARROW_ASSIGN_OR_RAISE(uint64_t size, cursor->ReadVarint());
      envelope->arrow_ipc.clear();  // the last occurrence of a field wins, as in protobuf
      ARROW_RETURN_NOT_OK(cursor->Take(size, &envelope->arrow_ipc));
    } else {
      ARROW_RETURN_NOT_OK(SkipField(cursor, tag & 7));
    }
  }
  if (cursor->consumed() != end) return arrow::Status::Invalid("a Data field overruns its length");
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<grpc::ByteBuffer> EncodeDataEnvelope(uint64_t sequence,
                                                   const arrow::RecordBatch& batch) {
  ARROW_ASSIGN_OR_RAISE(auto body, protocol::EncodeBatchStream(batch));
  uint64_t ipc_length = 0;
  for (const auto& buffer : body) ipc_length += static_cast<uint64_t>(buffer->size());
  // Pad the sequence varint so that the prefix (everything before the Arrow
  // bytes) is a multiple of 8 long: the receiver then reads Arrow buffers in place.
  size_t sequence_size = VarintSize(sequence);
  uint64_t data_length = 0;
  for (size_t size = sequence_size; size <= kMaxVarintSize; ++size) {
    sequence_size = size;
    data_length = 1 + size + 1 + VarintSize(ipc_length) + ipc_length;
    const uint64_t prefix_size = 1 + VarintSize(data_length) + data_length - ipc_length;
    if (prefix_size % 8 == 0) break;
  }
  std::string prefix;
  prefix.push_back(static_cast<char>(kDataTag));
  AppendVarint(data_length, VarintSize(data_length), &prefix);
  prefix.push_back(static_cast<char>(kSequenceTag));
  AppendVarint(sequence, sequence_size, &prefix);
  prefix.push_back(static_cast<char>(kArrowIpcTag));
  AppendVarint(ipc_length, VarintSize(ipc_length), &prefix);
  return MessageOf(prefix, body);
}

bool IsDataEnvelope(const std::vector<grpc::Slice>& slices) {
  for (const auto& slice : slices) {
    if (slice.size() > 0) return slice.begin()[0] == kDataTag;
  }
  return false;
}

arrow::Result<DataEnvelope> DecodeDataEnvelope(std::vector<grpc::Slice> slices) {
  SliceCursor cursor(std::move(slices));
  ARROW_ASSIGN_OR_RAISE(uint64_t tag, cursor.ReadVarint());
  if (tag != kDataTag) return arrow::Status::Invalid("the message does not start with Data");
  DataEnvelope envelope;
  ARROW_RETURN_NOT_OK(DecodeData(&cursor, &envelope));
  // Fields after Data (none are sent today) are skipped, as protobuf would.
  while (!cursor.AtEnd()) {
    ARROW_ASSIGN_OR_RAISE(uint64_t next, cursor.ReadVarint());
    if (next == kDataTag) {
      // A message field that occurs again is merged into the first, as in protobuf.
      ARROW_RETURN_NOT_OK(DecodeData(&cursor, &envelope));
    } else {
      ARROW_RETURN_NOT_OK(SkipField(&cursor, next & 7));
    }
  }
  return envelope;
}

}  // namespace quiver::grpc_wire
