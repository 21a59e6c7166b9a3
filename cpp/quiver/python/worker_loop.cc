#include "quiver/python/worker_loop.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <utility>
#include <vector>

#include <arrow/io/memory.h>
#include <arrow/ipc/message.h>
#include <arrow/ipc/options.h>
#include <arrow/ipc/reader.h>
#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/frame_codec.h"

namespace quiver::python {
namespace {

// The end-of-stream marker that closes every Data body: a continuation token and a zero length.
constexpr uint8_t kEndOfStream[8] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};

// The Python worker's frame limits (quiver.protocol.framing.DEFAULT_LIMITS).
protocol::FramingLimits WorkerLimits() { return protocol::FramingLimits{}; }

int64_t NanosSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              start)
      .count();
}

arrow::Result<std::shared_ptr<arrow::Schema>> ReadSchemaMessage(std::string_view bytes,
                                                                const char* what) {
  auto parsed = protocol::DeserializeSchema(bytes);
  if (!parsed.ok()) {
    return arrow::Status::Invalid(
        what, " is not an Arrow IPC schema message: ", parsed.status().message());
  }
  return parsed;
}

std::string BytesOf(const uint8_t* data, int64_t size) {
  return std::string(reinterpret_cast<const char*>(data), static_cast<size_t>(size));
}

}  // namespace

arrow::Result<std::unique_ptr<WorkerBatchLoop>> WorkerBatchLoop::Make(
    int fd, std::string_view schema_message, std::string_view result_schema_message,
    int64_t max_inline_result_bytes) {
  if (fd < 0) return arrow::Status::Invalid("the worker's socket is closed (fd ", fd, ")");
  ARROW_ASSIGN_OR_RAISE(auto input_schema,
                        ReadSchemaMessage(schema_message, "the batches' schema message"));
  ARROW_ASSIGN_OR_RAISE(auto result_schema,
                        ReadSchemaMessage(result_schema_message, "the result schema message"));
  return std::unique_ptr<WorkerBatchLoop>(
      new WorkerBatchLoop(fd, std::string(schema_message), std::move(input_schema),
                          std::move(result_schema), max_inline_result_bytes));
}

WorkerBatchLoop::WorkerBatchLoop(int fd, std::string schema_message,
                                 std::shared_ptr<arrow::Schema> input_schema,
                                 std::shared_ptr<arrow::Schema> result_schema,
                                 int64_t max_inline_result_bytes)
    : fd_(fd),
      schema_message_(std::move(schema_message)),
      input_schema_(std::move(input_schema)),
      result_schema_(std::move(result_schema)),
      max_inline_result_bytes_(max_inline_result_bytes) {}

void WorkerBatchLoop::WaitFor(short events) const {
  pollfd ready{fd_, events, 0};
  // EINTR ends the wait early; the read or write that follows says what happened.
  (void)::poll(&ready, 1, -1);
}

int64_t WorkerBatchLoop::TakeCodecNanos() { return std::exchange(codec_nanos_, 0); }

arrow::Result<LoopExit> WorkerBatchLoop::Serve(const BatchLoopCallbacks& callbacks) {
  const protocol::FramingLimits limits = WorkerLimits();
  while (true) {
    LoopExit exit;
    uint8_t header_bytes[protocol::kFrameHeaderSize];
    int64_t got = 0;
    ARROW_ASSIGN_OR_RAISE(exit.read_error,
                          ReadFully(header_bytes, protocol::kFrameHeaderSize, &got, callbacks));
    auto header = got == protocol::kFrameHeaderSize
                      ? protocol::ReadFrameHeader(header_bytes, limits)
                      : arrow::Result<protocol::FrameHeader>(arrow::Status::IOError("short"));
    // Whatever is not a whole, well-formed data frame header (EOF, a control
    // frame, a broken header) is the Python reader's: it words the errors.
    if (exit.read_error != 0 || !header.ok() || header->kind != protocol::FrameKind::kData) {
      exit.unread = BytesOf(header_bytes, got);
      return exit;
    }
    auto allocated = arrow::AllocateBuffer(header->body_length);
    if (!allocated.ok()) {
      exit.unread = BytesOf(header_bytes, got);
      return exit;
    }
    std::shared_ptr<arrow::Buffer> body = std::move(allocated).ValueUnsafe();
    ARROW_ASSIGN_OR_RAISE(exit.read_error,
                          ReadFully(body->mutable_data(), body->size(), &got, callbacks));
    std::shared_ptr<arrow::RecordBatch> batch;
    if (exit.read_error == 0 && got == body->size()) batch = DecodeKnown(body);
    if (batch == nullptr) {
      exit.unread = BytesOf(header_bytes, protocol::kFrameHeaderSize) + BytesOf(body->data(), got);
      return exit;
    }
    // A batch that cannot be answered (the result cannot be taken back or
    // encoded) is the Python worker's to fail: it sends the Error and goes on.
    auto answer = callbacks.run_batch(header->sequence, std::move(batch));
    if (!answer.ok()) return Unanswered(std::move(exit), header->sequence, answer.status());
    if (answer->result != nullptr) {
      auto sent = SendResult(header->sequence, *answer->result, callbacks);
      if (!sent.ok()) return Unanswered(std::move(exit), header->sequence, sent.status());
      exit.write_error = *sent;
      if (exit.write_error != 0) return exit;
    }
    if (answer->leave) return exit;
  }
}

LoopExit WorkerBatchLoop::Unanswered(LoopExit exit, uint64_t sequence,
                                     const arrow::Status& status) {
  exit.unanswered = true;
  exit.unanswered_sequence = sequence;
  exit.unanswered_reason = status.message();
  return exit;
}

arrow::Result<int> WorkerBatchLoop::ReadFully(uint8_t* out, int64_t size, int64_t* got,
                                              const BatchLoopCallbacks& callbacks) {
  *got = 0;
  while (*got < size) {
    const ssize_t count = ::read(fd_, out + *got, static_cast<size_t>(size - *got));
    if (count > 0) {
      *got += count;
    } else if (count == 0) {
      return 0;  // EOF: the Python reader sees it too, and says what it means
    } else if (errno == EINTR) {
      ARROW_RETURN_NOT_OK(callbacks.interrupted());
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      WaitFor(POLLIN);  // a socket left non-blocking: wait as a blocking read would
    } else {
      return errno;
    }
  }
  return 0;
}

std::shared_ptr<arrow::RecordBatch> WorkerBatchLoop::DecodeKnown(
    const std::shared_ptr<arrow::Buffer>& body) {
  const auto started = std::chrono::steady_clock::now();
  const auto known = static_cast<int64_t>(schema_message_.size());
  const int64_t end = body->size() - static_cast<int64_t>(sizeof(kEndOfStream));
  if (end < known + 8 || std::memcmp(body->data(), schema_message_.data(), known) != 0 ||
      std::memcmp(body->data() + end, kEndOfStream, sizeof(kEndOfStream)) != 0) {
    return nullptr;
  }
  // Exactly one record batch message between the schema and the end: no
  // second batch, no dictionary, hides there.
  arrow::io::BufferReader reader(arrow::SliceBuffer(body, known, end - known));
  auto message = arrow::ipc::ReadMessage(&reader);
  if (!message.ok() || *message == nullptr ||
      (*message)->type() != arrow::ipc::MessageType::RECORD_BATCH) {
    return nullptr;
  }
  auto position = reader.Tell();
  if (!position.ok() || *position != end - known) return nullptr;
  auto options = arrow::ipc::IpcReadOptions::Defaults();
  options.ensure_alignment = arrow::ipc::Alignment::kDataTypeSpecificAlignment;
  auto batch = arrow::ipc::ReadRecordBatch(**message, input_schema_, nullptr, options);
  // The batch comes from another process: checked as Arrow checks untrusted
  // data before any UDF reads it. A bad one goes to the Python worker, which
  // says what is wrong with it.
  if (!batch.ok() || !(*batch)->ValidateFull().ok()) return nullptr;
  codec_nanos_ += NanosSince(started);
  return std::move(batch).ValueUnsafe();
}

arrow::Result<int> WorkerBatchLoop::SendResult(uint64_t sequence, const arrow::RecordBatch& result,
                                               const BatchLoopCallbacks& callbacks) {
  const auto started = std::chrono::steady_clock::now();
  ARROW_ASSIGN_OR_RAISE(auto body, protocol::EncodeBatchStream(result));
  int64_t size = 0;
  for (const auto& buffer : body) size += buffer->size();
  codec_nanos_ += NanosSince(started);
  if (size > max_inline_result_bytes_) {
    ARROW_ASSIGN_OR_RAISE(auto joined, arrow::ConcatenateBuffers(body));
    ARROW_RETURN_NOT_OK(callbacks.send_elsewhere(sequence, std::move(joined)));
    return 0;
  }
  return WriteDataFrame(sequence, body, callbacks);
}

arrow::Result<int> WorkerBatchLoop::WriteDataFrame(
    uint64_t sequence, const std::vector<std::shared_ptr<arrow::Buffer>>& body,
    const BatchLoopCallbacks& callbacks) {
  protocol::FrameHeader header;
  header.kind = protocol::FrameKind::kData;
  header.sequence = sequence;
  uint8_t header_bytes[protocol::kFrameHeaderSize];
  std::vector<iovec> pending;
  pending.reserve(body.size() + 1);
  pending.push_back({header_bytes, sizeof(header_bytes)});
  for (const auto& buffer : body) {
    header.body_length += buffer->size();
    if (buffer->size() > 0) {
      pending.push_back(
          {const_cast<uint8_t*>(buffer->data()), static_cast<size_t>(buffer->size())});
    }
  }
  protocol::WriteFrameHeader(header, header_bytes);
  size_t first = 0;
  while (first < pending.size()) {
    msghdr message{};
    message.msg_iov = pending.data() + first;
    message.msg_iovlen = std::min<size_t>(pending.size() - first, IOV_MAX);
    ssize_t sent = ::sendmsg(fd_, &message, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        WaitFor(POLLOUT);
      } else if (errno == EINTR) {
        ARROW_RETURN_NOT_OK(callbacks.interrupted());
      } else {
        return errno;
      }
      continue;
    }
    // Skip what went out; resume inside a buffer after a partial write.
    while (first < pending.size() && static_cast<size_t>(sent) >= pending[first].iov_len) {
      sent -= static_cast<ssize_t>(pending[first].iov_len);
      ++first;
    }
    if (sent > 0) {
      pending[first].iov_base = static_cast<uint8_t*>(pending[first].iov_base) + sent;
      pending[first].iov_len -= static_cast<size_t>(sent);
    }
  }
  return 0;
}

}  // namespace quiver::python
