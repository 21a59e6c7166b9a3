#pragma once

// The framing of the `uds` transport (docs/protocol.md, section 4), without I/O:
// encoding turns a message into a header plus the buffers to hand to writev;
// decoding turns bytes, in whatever chunks they arrive, back into frames.

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/memory_pool.h>
#include <arrow/result.h>
#include <arrow/status.h>

namespace quiver::protocol {

/// What a frame carries.
enum class FrameKind : uint8_t {
  /// A serialized EngineMessage or WorkerMessage as metadata, no body.
  kControl = 1,
  /// One batch as an Arrow IPC stream in the body, no metadata.
  kData = 2,
};

/// Size of the fixed frame header in bytes.
inline constexpr int64_t kFrameHeaderSize = 32;

/// Largest frames a receiver accepts; a frame over them is an error, not an allocation.
struct FramingLimits {
  int64_t max_metadata_bytes = int64_t{64} << 20;
  int64_t max_body_bytes = int64_t{2} << 30;
};

/// The fields of a frame header.
struct FrameHeader {
  FrameKind kind = FrameKind::kControl;
  uint64_t sequence = 0;
  int64_t metadata_length = 0;
  int64_t body_length = 0;
};

/// A frame ready to be written: `buffers` in order, the header first.
struct EncodedFrame {
  std::vector<std::shared_ptr<arrow::Buffer>> buffers;

  /// Returns the number of bytes of all buffers.
  int64_t size() const;
};

/// A decoded frame.
struct Frame {
  FrameKind kind = FrameKind::kControl;
  uint64_t sequence = 0;
  std::shared_ptr<arrow::Buffer> metadata;  // never null; empty for data frames
  std::shared_ptr<arrow::Buffer> body;      // never null; empty for control frames
};

/// Writes the 32 header bytes of `header` to `out`.
void WriteFrameHeader(const FrameHeader& header, uint8_t* out);

/// Parses and validates 32 header bytes against the protocol and `limits`.
arrow::Result<FrameHeader> ReadFrameHeader(const uint8_t* bytes, const FramingLimits& limits);

/// Frames a serialized control message (no copy of `message`).
arrow::Result<EncodedFrame> EncodeControlFrame(std::shared_ptr<arrow::Buffer> message);

/// Frames a batch body given as buffers (no copy of any of them).
arrow::Result<EncodedFrame> EncodeDataFrame(uint64_t sequence,
                                            std::vector<std::shared_ptr<arrow::Buffer>> body);

/// \brief Turns a byte stream, in chunks of any size, back into frames.
///
/// A frame's metadata and body are returned as slices of a chunk when they lie
/// inside one chunk, else assembled once into a 64-byte-aligned buffer.
class FrameDecoder {
 public:
  explicit FrameDecoder(FramingLimits limits = {},
                        arrow::MemoryPool* pool = arrow::default_memory_pool());

  /// Feeds the next chunk of bytes; complete frames become available to Next().
  /// After an error the decoder stays failed.
  arrow::Status Consume(std::shared_ptr<arrow::Buffer> chunk);

  /// Removes and returns the oldest complete frame, if any.
  std::optional<Frame> Next();

  /// Declares the end of the input: fails when it ends inside a frame.
  arrow::Status Finish() const;

  /// Returns how many bytes complete the frame part being decoded: a reader
  /// that reads exactly this many into one buffer gets every metadata and
  /// body as that buffer, without a copy.
  int64_t wanted() const;

  /// Returns the frame part being decoded: "header", "metadata" or "body".
  const char* part() const;

 private:
  // Takes bytes from `chunk` at `*offset` into the frame part being assembled.
  arrow::Status Advance(const std::shared_ptr<arrow::Buffer>& chunk, int64_t* offset);
  arrow::Status StartPart(const std::shared_ptr<arrow::Buffer>& chunk, int64_t* offset,
                          int64_t length, std::shared_ptr<arrow::Buffer>* part);
  void CompletePartIfDone();

  enum class Stage { kHeader, kMetadata, kBody };
  FramingLimits limits_;
  arrow::MemoryPool* pool_;
  arrow::Status failure_;
  Stage stage_ = Stage::kHeader;
  uint8_t header_bytes_[kFrameHeaderSize] = {};
  int64_t filled_ = 0;  // bytes of the current part received so far
  FrameHeader header_;
  std::shared_ptr<arrow::ResizableBuffer> assembling_;  // current part when it spans chunks
  Frame frame_;
  std::deque<Frame> ready_;
  int64_t bytes_consumed_ = 0;
};

}  // namespace quiver::protocol
