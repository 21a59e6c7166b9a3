#include "quiver/transport/uds/uds_connection.h"

#include <sys/socket.h>

#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "quiver/io/unix_socket.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/udf_error.h"

namespace quiver::transport::uds {
namespace {

class UdsConnection : public Connection {
 public:
  UdsConnection(io::UniqueFd socket, std::string endpoint, protocol::FramingLimits limits)
      : socket_(std::move(socket)), endpoint_(std::move(endpoint)), decoder_(limits) {}

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
    while (true) {
      if (std::optional<protocol::Frame> frame = decoder_.Next()) return Decode(*frame);
      // Each read is exactly one frame part, into its own 64-byte-aligned
      // buffer, so the decoder hands metadata and bodies out without a copy.
      const int64_t wanted = decoder_.wanted();
      ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> chunk, arrow::AllocateBuffer(wanted));
      ARROW_ASSIGN_OR_RAISE(int64_t got,
                            io::ReceiveAll(socket_.get(), chunk->mutable_data(), wanted, deadline));
      if (got == 0 && decoder_.Finish().ok()) {  // between two frames
        return arrow::Status::IOError("the worker closed the connection");
      }
      if (got < wanted) return Truncated(decoder_.part(), wanted, got);
      ARROW_RETURN_NOT_OK(decoder_.Consume(std::move(chunk)));
    }
  }

  void Shutdown() override {
    std::lock_guard<std::mutex> lock(shutdown_mutex_);
    if (!shut_down_ && socket_.valid()) ::shutdown(socket_.get(), SHUT_RDWR);
    shut_down_ = true;
  }

  std::string endpoint() const override { return endpoint_; }

  bool ReceiveKeepsDeadline() const override { return true; }

 private:
  static arrow::Status Truncated(const char* part, int64_t expected, int64_t got) {
    return arrow::Status::IOError("the worker closed the connection in the middle of a frame ",
                                  part, " (", got, " of ", expected, " bytes arrived)");
  }

  static arrow::Result<WorkerReply> Decode(const protocol::Frame& frame) {
    WorkerReply reply;
    if (frame.kind == protocol::FrameKind::kControl) {
      reply.control.emplace();
      if (!reply.control->ParseFromArray(frame.metadata->data(),
                                         static_cast<int>(frame.metadata->size()))) {
        return arrow::Status::IOError(
            "the worker sent a control frame that is not a valid "
            "quiver.v1.WorkerMessage (",
            frame.metadata->size(), " bytes)");
      }
      return reply;
    }
    reply.sequence = frame.sequence;
    auto batch = protocol::DecodeBatchStream(frame.body);
    if (!batch.ok()) {
      return AsProtocolViolation(batch.status().WithMessage(
          "the worker sent a result for batch ", frame.sequence,
          " that is not a valid Arrow IPC stream: ", batch.status().message()));
    }
    reply.batch = std::move(batch).ValueUnsafe();
    return reply;
  }

  io::UniqueFd socket_;
  std::string endpoint_;
  protocol::FrameDecoder decoder_;  // used by the receiving thread only
  std::mutex shutdown_mutex_;
  bool shut_down_ = false;
};

}  // namespace

std::unique_ptr<Connection> MakeUdsConnection(io::UniqueFd socket, std::string endpoint,
                                              protocol::FramingLimits limits) {
  return std::make_unique<UdsConnection>(std::move(socket), std::move(endpoint), limits);
}

}  // namespace quiver::transport::uds
