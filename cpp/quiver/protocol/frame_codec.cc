#include "quiver/protocol/frame_codec.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include <arrow/util/endian.h>

#include "quiver/protocol/udf_error.h"

namespace quiver::protocol {
namespace {

constexpr uint8_t kMagic[4] = {'Q', 'V', 'R', '1'};

template <typename T>
void Store(uint8_t* out, T value) {
  value = arrow::bit_util::ToLittleEndian(value);
  std::memcpy(out, &value, sizeof(T));
}

template <typename T>
T Load(const uint8_t* in) {
  T value;
  std::memcpy(&value, in, sizeof(T));
  return arrow::bit_util::FromLittleEndian(value);
}

std::string Hex(const uint8_t* bytes, int count) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  for (int i = 0; i < count; ++i) {
    if (i > 0) text += ' ';
    text += kDigits[bytes[i] >> 4];
    text += kDigits[bytes[i] & 0xf];
  }
  return text;
}

// Returns e.g. "2.00 GiB", for sizes near the body limit.
std::string GibText(uint64_t bytes) {
  char text[48];
  std::snprintf(text, sizeof(text), "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  return text;
}

arrow::Result<EncodedFrame> Encode(const FrameHeader& header,
                                   std::vector<std::shared_ptr<arrow::Buffer>> payload) {
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> header_buffer,
                        arrow::AllocateBuffer(kFrameHeaderSize));
  WriteFrameHeader(header, header_buffer->mutable_data());
  EncodedFrame frame;
  frame.buffers.reserve(payload.size() + 1);
  frame.buffers.push_back(std::move(header_buffer));
  for (auto& buffer : payload) {
    if (buffer != nullptr && buffer->size() > 0) frame.buffers.push_back(std::move(buffer));
  }
  return frame;
}

}  // namespace

int64_t EncodedFrame::size() const {
  int64_t total = 0;
  for (const auto& buffer : buffers) total += buffer->size();
  return total;
}

void WriteFrameHeader(const FrameHeader& header, uint8_t* out) {
  std::memcpy(out, kMagic, sizeof(kMagic));
  out[4] = static_cast<uint8_t>(header.kind);
  out[5] = 0;                   // flags
  Store<uint16_t>(out + 6, 0);  // reserved
  Store<uint64_t>(out + 8, header.sequence);
  Store<uint32_t>(out + 16, static_cast<uint32_t>(header.metadata_length));
  Store<uint32_t>(out + 20, 0);  // reserved
  Store<uint64_t>(out + 24, static_cast<uint64_t>(header.body_length));
}

arrow::Result<FrameHeader> ReadFrameHeader(const uint8_t* bytes, const FramingLimits& limits) {
  if (std::memcmp(bytes, kMagic, sizeof(kMagic)) != 0) {
    return arrow::Status::IOError("bad frame magic [", Hex(bytes, 4),
                                  "], expected [51 56 52 31] (\"QVR1\"): the peer does not "
                                  "speak the quiver uds framing, or the stream lost its place");
  }
  FrameHeader header;
  const uint8_t kind = bytes[4];
  if (kind != static_cast<uint8_t>(FrameKind::kControl) &&
      kind != static_cast<uint8_t>(FrameKind::kData)) {
    return arrow::Status::IOError("unknown frame kind ", static_cast<int>(kind),
                                  " (1 = control, 2 = data)");
  }
  header.kind = static_cast<FrameKind>(kind);
  if (bytes[5] != 0 || Load<uint16_t>(bytes + 6) != 0 || Load<uint32_t>(bytes + 20) != 0) {
    return arrow::Status::IOError("frame header has non-zero flags or reserved bytes [",
                                  Hex(bytes + 4, 4), "] [", Hex(bytes + 20, 4),
                                  "]: written by a newer, incompatible framing");
  }
  header.sequence = Load<uint64_t>(bytes + 8);
  header.metadata_length = Load<uint32_t>(bytes + 16);
  const uint64_t body_length = Load<uint64_t>(bytes + 24);
  if (header.metadata_length > limits.max_metadata_bytes) {
    return arrow::Status::IOError("frame metadata of ", header.metadata_length,
                                  " bytes is over the limit of ", limits.max_metadata_bytes,
                                  " bytes");
  }
  if (body_length > static_cast<uint64_t>(limits.max_body_bytes)) {
    // Not a broken stream but a message too large: the detail lets the reader say so.
    UdfErrorDetail detail;
    detail.kind = UdfErrorKind::kBatchTooLarge;
    return WithUdfError(
        arrow::Status::IOError("a frame body of ", body_length, " bytes (", GibText(body_length),
                               ") is over the limit of ", limits.max_body_bytes, " bytes (",
                               GibText(limits.max_body_bytes),
                               ") for one message; send smaller batches"),
        std::move(detail));
  }
  header.body_length = static_cast<int64_t>(body_length);
  if (header.kind == FrameKind::kControl && header.body_length != 0) {
    return arrow::Status::IOError("control frame with a body of ", header.body_length,
                                  " bytes (control frames carry metadata only)");
  }
  if (header.kind == FrameKind::kControl && header.sequence != 0) {
    return arrow::Status::IOError("control frame with sequence ", header.sequence,
                                  " (control frames carry sequence 0)");
  }
  if (header.kind == FrameKind::kData && header.metadata_length != 0) {
    return arrow::Status::IOError("data frame with ", header.metadata_length,
                                  " bytes of metadata (data frames carry a body only)");
  }
  return header;
}

arrow::Result<EncodedFrame> EncodeControlFrame(std::shared_ptr<arrow::Buffer> message) {
  if (message == nullptr) return arrow::Status::Invalid("control frame without a message");
  FrameHeader header{FrameKind::kControl, 0, message->size(), 0};
  return Encode(header, {std::move(message)});
}

arrow::Result<EncodedFrame> EncodeDataFrame(uint64_t sequence,
                                            std::vector<std::shared_ptr<arrow::Buffer>> body) {
  FrameHeader header{FrameKind::kData, sequence, 0, 0};
  for (const auto& buffer : body) header.body_length += buffer == nullptr ? 0 : buffer->size();
  return Encode(header, std::move(body));
}

FrameDecoder::FrameDecoder(FramingLimits limits, arrow::MemoryPool* pool)
    : limits_(limits), pool_(pool) {}

arrow::Status FrameDecoder::Consume(std::shared_ptr<arrow::Buffer> chunk) {
  if (!failure_.ok()) return failure_;
  int64_t offset = 0;
  while (offset < chunk->size()) {
    arrow::Status status = Advance(chunk, &offset);
    if (!status.ok()) {
      failure_ = status.WithMessage("at byte ", bytes_consumed_ + offset,
                                    " of the stream: ", status.message());
      return failure_;
    }
  }
  bytes_consumed_ += chunk->size();
  return arrow::Status::OK();
}

arrow::Status FrameDecoder::Advance(const std::shared_ptr<arrow::Buffer>& chunk, int64_t* offset) {
  if (stage_ == Stage::kHeader) {
    const int64_t take = std::min(kFrameHeaderSize - filled_, chunk->size() - *offset);
    std::memcpy(header_bytes_ + filled_, chunk->data() + *offset, static_cast<size_t>(take));
    filled_ += take;
    *offset += take;
    if (filled_ < kFrameHeaderSize) return arrow::Status::OK();
    ARROW_ASSIGN_OR_RAISE(header_, ReadFrameHeader(header_bytes_, limits_));
    frame_ = Frame{header_.kind, header_.sequence, std::make_shared<arrow::Buffer>(nullptr, 0),
                   std::make_shared<arrow::Buffer>(nullptr, 0)};
    filled_ = 0;
    stage_ = Stage::kMetadata;
    CompletePartIfDone();
    return arrow::Status::OK();
  }
  if (stage_ == Stage::kMetadata) {
    return StartPart(chunk, offset, header_.metadata_length, &frame_.metadata);
  }
  return StartPart(chunk, offset, header_.body_length, &frame_.body);
}

arrow::Status FrameDecoder::StartPart(const std::shared_ptr<arrow::Buffer>& chunk, int64_t* offset,
                                      int64_t length, std::shared_ptr<arrow::Buffer>* part) {
  const int64_t available = chunk->size() - *offset;
  if (filled_ == 0 && available >= length) {
    *part = arrow::SliceBuffer(chunk, *offset, length);  // inside one chunk: no copy
    *offset += length;
    filled_ = length;
  } else {
    if (filled_ == 0) {
      ARROW_ASSIGN_OR_RAISE(std::unique_ptr<arrow::ResizableBuffer> buffer,
                            arrow::AllocateResizableBuffer(length, pool_));
      assembling_ = std::move(buffer);
    }
    const int64_t take = std::min(length - filled_, available);
    std::memcpy(assembling_->mutable_data() + filled_, chunk->data() + *offset,
                static_cast<size_t>(take));
    filled_ += take;
    *offset += take;
    if (filled_ == length) *part = std::move(assembling_);
  }
  if (filled_ == length) {
    filled_ = 0;
    stage_ = stage_ == Stage::kMetadata ? Stage::kBody : Stage::kHeader;
    if (stage_ == Stage::kHeader) ready_.push_back(std::move(frame_));
    CompletePartIfDone();
  }
  return arrow::Status::OK();
}

void FrameDecoder::CompletePartIfDone() {
  if (stage_ == Stage::kMetadata && header_.metadata_length == 0) stage_ = Stage::kBody;
  if (stage_ == Stage::kBody && header_.body_length == 0) {
    ready_.push_back(std::move(frame_));
    stage_ = Stage::kHeader;
  }
}

std::optional<Frame> FrameDecoder::Next() {
  if (ready_.empty()) return std::nullopt;
  Frame frame = std::move(ready_.front());
  ready_.pop_front();
  return frame;
}

arrow::Status FrameDecoder::Finish() const {
  if (!failure_.ok()) return failure_;
  if (stage_ == Stage::kHeader && filled_ == 0) return arrow::Status::OK();
  const int64_t expected = filled_ + wanted();
  return arrow::Status::IOError("stream ended inside a frame ", part(), ": expected ", expected,
                                " bytes, got ", filled_, " (", expected - filled_,
                                " missing); the peer closed the connection mid-message");
}

int64_t FrameDecoder::wanted() const {
  const int64_t length = stage_ == Stage::kHeader     ? kFrameHeaderSize
                         : stage_ == Stage::kMetadata ? header_.metadata_length
                                                      : header_.body_length;
  return length - filled_;
}

const char* FrameDecoder::part() const {
  return stage_ == Stage::kHeader ? "header" : stage_ == Stage::kMetadata ? "metadata" : "body";
}

}  // namespace quiver::protocol
