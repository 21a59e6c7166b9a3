#pragma once

// The worker's frames as the engine's uds and shm transports read them off the
// socket (the uds framing, docs/protocol.md, section 4). Nearly every frame over
// shm is small (a header and a ShmData naming a result region, or a short inline
// batch), and so are all frames of small batches over uds.

#include <cstdint>
#include <memory>

#include <arrow/buffer.h>
#include <arrow/result.h>

#include "quiver/io/deadline.h"
#include "quiver/protocol/frame_codec.h"

namespace quiver::transport {

/// \brief Reads frames from a connected stream socket with one `recv` and no
/// allocation for a small control frame.
///
/// A read takes whatever has arrived, up to kStagingBytes, into a staging
/// buffer that is reused while nothing refers to it. A frame's header and
/// metadata are handed to the decoder as slices of it when they arrived whole;
/// a body always gets a 64-byte-aligned buffer of its own, the staged bytes
/// copied in (at most kStagingBytes) and the rest read straight into it, so a
/// large body is never copied.
class FrameReader {
 public:
  static constexpr int64_t kStagingBytes = 4096;

  /// Reads from `socket`, which stays owned by the caller.
  FrameReader(int socket, protocol::FramingLimits limits);

  /// Returns the next frame, waiting until `deadline`; an error when the
  /// worker closed the connection (between frames or in the middle of one).
  arrow::Result<protocol::Frame> Next(io::Deadline deadline);

 private:
  // Reads at least one byte into an empty staging buffer.
  arrow::Status Refill(io::Deadline deadline);

  // Hands the part the decoder waits for, `wanted` bytes, in a buffer of its
  // own: the staged bytes first, then the rest from the socket.
  arrow::Status ReadWholePart(int64_t wanted, io::Deadline deadline);

  int socket_;
  protocol::FrameDecoder decoder_;
  std::shared_ptr<arrow::Buffer> staging_;
  int64_t staged_begin_ = 0;  // bytes of staging_ not yet given to the decoder
  int64_t staged_end_ = 0;
};

}  // namespace quiver::transport
