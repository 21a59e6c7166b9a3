#include "quiver/transport/frame_reader.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>

#include <arrow/status.h>

#include "quiver/io/unix_socket.h"

namespace quiver::transport {
namespace {

arrow::Status Closed(const protocol::FrameDecoder& decoder, int64_t got, int64_t wanted) {
  return arrow::Status::IOError("the worker closed the connection in the middle of a frame ",
                                decoder.part(), " (", got, " of ", wanted, " bytes arrived)");
}

// Waits until `socket` is readable or `deadline` passed (false).
arrow::Result<bool> Readable(int socket, io::Deadline deadline) {
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const int timeout = static_cast<int>(std::clamp<int64_t>(left.count() + 1, 0, 60'000));
    pollfd entry{socket, POLLIN, 0};
    const int ready = ::poll(&entry, 1, timeout);
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) {
      return arrow::Status::IOError("poll of the worker's socket: ", std::strerror(errno));
    }
    if (ready == 0 && std::chrono::steady_clock::now() >= deadline) return false;
  }
}

// Reads what has arrived, at least one byte (0: the peer closed the connection).
arrow::Result<int64_t> ReceiveSome(int socket, uint8_t* out, int64_t capacity,
                                   io::Deadline deadline) {
  while (true) {
    // Without a deadline one blocking call waits; with one, poll first.
    if (deadline != io::kNoDeadline) {
      ARROW_ASSIGN_OR_RAISE(bool readable, Readable(socket, deadline));
      if (!readable) return arrow::Status::IOError("receive timed out");
    }
    const int flags = deadline == io::kNoDeadline ? 0 : MSG_DONTWAIT;
    const ssize_t got = ::recv(socket, out, static_cast<size_t>(capacity), flags);
    if (got >= 0) return got;
    if (errno == ECONNRESET) return 0;
    if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      return arrow::Status::IOError("receive from worker: ", std::strerror(errno));
    }
  }
}

}  // namespace

FrameReader::FrameReader(int socket, protocol::FramingLimits limits)
    : socket_(socket), decoder_(limits) {}

arrow::Result<protocol::Frame> FrameReader::Next(io::Deadline deadline) {
  while (true) {
    if (std::optional<protocol::Frame> frame = decoder_.Next()) return std::move(*frame);
    const int64_t wanted = decoder_.wanted();
    const int64_t staged = staged_end_ - staged_begin_;
    const bool body = std::string_view(decoder_.part()) == "body";
    if (!body && staged >= wanted) {  // a header or message that arrived whole: a slice
      ARROW_RETURN_NOT_OK(decoder_.Consume(arrow::SliceBuffer(staging_, staged_begin_, wanted)));
      staged_begin_ += wanted;
    } else if (staged == 0 && !body && wanted <= kStagingBytes) {
      ARROW_RETURN_NOT_OK(Refill(deadline));
    } else {
      ARROW_RETURN_NOT_OK(ReadWholePart(wanted, deadline));
    }
  }
}

arrow::Status FrameReader::Refill(io::Deadline deadline) {
  // Reused unless a slice of it is still held (a frame not yet dropped).
  if (staging_ == nullptr || staging_.use_count() > 1) {
    ARROW_ASSIGN_OR_RAISE(staging_, arrow::AllocateBuffer(kStagingBytes));
  }
  staged_begin_ = staged_end_ = 0;
  ARROW_ASSIGN_OR_RAISE(int64_t got,
                        ReceiveSome(socket_, staging_->mutable_data(), kStagingBytes, deadline));
  if (got == 0) {
    if (decoder_.Finish().ok()) return arrow::Status::IOError("the worker closed the connection");
    return Closed(decoder_, 0, decoder_.wanted());
  }
  staged_end_ = got;
  return arrow::Status::OK();
}

arrow::Status FrameReader::ReadWholePart(int64_t wanted, io::Deadline deadline) {
  const int64_t staged = std::min(staged_end_ - staged_begin_, wanted);
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> part, arrow::AllocateBuffer(wanted));
  if (staged > 0) {
    std::memcpy(part->mutable_data(), staging_->data() + staged_begin_,
                static_cast<size_t>(staged));
    staged_begin_ += staged;
  }
  if (staged < wanted) {
    ARROW_ASSIGN_OR_RAISE(int64_t got, io::ReceiveAll(socket_, part->mutable_data() + staged,
                                                      wanted - staged, deadline));
    if (got < wanted - staged) return Closed(decoder_, staged + got, wanted);
  }
  return decoder_.Consume(std::move(part));
}

}  // namespace quiver::transport
