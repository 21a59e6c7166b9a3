#include "quiver/transport/uds/uds_connection.h"

#include <sys/socket.h>

#include <mutex>
#include <utility>
#include <vector>

#include "quiver/io/unix_socket.h"
#include "quiver/protocol/batch_codec.h"

namespace quiver::transport::uds {
namespace {

class UdsConnection : public Connection {
 public:
  UdsConnection(io::UniqueFd socket, std::string endpoint, protocol::FramingLimits limits)
      : socket_(std::move(socket)), endpoint_(std::move(endpoint)), limits_(limits) {}

  ~UdsConnection() override { Shutdown(); }

  arrow::Status SendControl(const v1::EngineMessage& message, io::Deadline deadline) override {
    auto bytes = arrow::Buffer::FromString(message.SerializeAsString());
    ARROW_ASSIGN_OR_RAISE(auto frame, protocol::EncodeControlFrame(std::move(bytes)));
    return io::SendAll(socket_.get(), frame.buffers, deadline);
  }

  arrow::Status SendBatch(uint64_t sequence, const arrow::RecordBatch& batch,
                          io::Deadline deadline) override {
    ARROW_ASSIGN_OR_RAISE(auto body, protocol::EncodeBatchStream(batch));
    ARROW_ASSIGN_OR_RAISE(auto frame, protocol::EncodeDataFrame(sequence, std::move(body)));
    return io::SendAll(socket_.get(), frame.buffers, deadline);
  }

  arrow::Result<WorkerReply> Receive(io::Deadline deadline) override {
    uint8_t header_bytes[protocol::kFrameHeaderSize];
    ARROW_ASSIGN_OR_RAISE(int64_t got, io::ReceiveAll(socket_.get(), header_bytes,
                                                      protocol::kFrameHeaderSize, deadline));
    if (got == 0) return arrow::Status::IOError("the worker closed the connection");
    if (got < protocol::kFrameHeaderSize)
      return Truncated("header", protocol::kFrameHeaderSize, got);
    ARROW_ASSIGN_OR_RAISE(auto header, protocol::ReadFrameHeader(header_bytes, limits_));
    if (header.kind == protocol::FrameKind::kControl) return ReceiveControl(header, deadline);
    return ReceiveBatch(header, deadline);
  }

  void Shutdown() override {
    std::lock_guard<std::mutex> lock(shutdown_mutex_);
    if (!shut_down_ && socket_.valid()) ::shutdown(socket_.get(), SHUT_RDWR);
    shut_down_ = true;
  }

  std::string endpoint() const override { return endpoint_; }

 private:
  static arrow::Status Truncated(const char* part, int64_t expected, int64_t got) {
    return arrow::Status::IOError("the worker closed the connection in the middle of a frame ",
                                  part, " (", got, " of ", expected, " bytes arrived)");
  }

  // Reads `length` bytes into a new 64-byte-aligned buffer.
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReceiveBuffer(const char* part, int64_t length,
                                                              io::Deadline deadline) {
    ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> buffer, arrow::AllocateBuffer(length));
    ARROW_ASSIGN_OR_RAISE(int64_t got,
                          io::ReceiveAll(socket_.get(), buffer->mutable_data(), length, deadline));
    if (got < length) return Truncated(part, length, got);
    return buffer;
  }

  arrow::Result<WorkerReply> ReceiveControl(const protocol::FrameHeader& header,
                                            io::Deadline deadline) {
    ARROW_ASSIGN_OR_RAISE(auto bytes, ReceiveBuffer("metadata", header.metadata_length, deadline));
    WorkerReply reply;
    reply.control.emplace();
    if (!reply.control->ParseFromArray(bytes->data(), static_cast<int>(bytes->size()))) {
      return arrow::Status::IOError(
          "the worker sent a control frame that is not a valid "
          "quiver.v1.WorkerMessage (",
          bytes->size(), " bytes)");
    }
    return reply;
  }

  arrow::Result<WorkerReply> ReceiveBatch(const protocol::FrameHeader& header,
                                          io::Deadline deadline) {
    ARROW_ASSIGN_OR_RAISE(auto body, ReceiveBuffer("body", header.body_length, deadline));
    WorkerReply reply;
    reply.sequence = header.sequence;
    auto batch = protocol::DecodeBatchStream(std::move(body));
    if (!batch.ok()) {
      return batch.status().WithMessage(
          "the worker sent a result for batch ", header.sequence,
          " that is not a valid Arrow IPC stream: ", batch.status().message());
    }
    reply.batch = std::move(batch).ValueUnsafe();
    return reply;
  }

  io::UniqueFd socket_;
  std::string endpoint_;
  protocol::FramingLimits limits_;
  std::mutex shutdown_mutex_;
  bool shut_down_ = false;
};

}  // namespace

std::unique_ptr<Connection> MakeUdsConnection(io::UniqueFd socket, std::string endpoint,
                                              protocol::FramingLimits limits) {
  return std::make_unique<UdsConnection>(std::move(socket), std::move(endpoint), limits);
}

}  // namespace quiver::transport::uds
