#include "quiver/transport/uds/uds_connection.h"

#include <sys/socket.h>

#include <mutex>
#include <utility>

#include "quiver/io/unix_socket.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/udf_error.h"
#include "quiver/transport/frame_reader.h"

namespace quiver::transport::uds {
namespace {

class UdsConnection : public Connection {
 public:
  UdsConnection(io::UniqueFd socket, std::string endpoint, protocol::FramingLimits limits)
      : socket_(std::move(socket)),
        endpoint_(std::move(endpoint)),
        reader_(socket_.get(), limits) {}

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
    // A small frame (a 1-row result, an Error, a heartbeat) comes in one read;
    // a body gets a 64-byte-aligned buffer of its own that the batch slices.
    ARROW_ASSIGN_OR_RAISE(protocol::Frame frame, reader_.Next(deadline));
    return Decode(frame);
  }

  void Shutdown() override {
    std::lock_guard<std::mutex> lock(shutdown_mutex_);
    if (!shut_down_ && socket_.valid()) ::shutdown(socket_.get(), SHUT_RDWR);
    shut_down_ = true;
  }

  std::string endpoint() const override { return endpoint_; }

  bool ReceiveKeepsDeadline() const override { return true; }

 private:
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
  FrameReader reader_;  // used by one receiving thread at a time
  std::mutex shutdown_mutex_;
  bool shut_down_ = false;
};

}  // namespace

std::unique_ptr<Connection> MakeUdsConnection(io::UniqueFd socket, std::string endpoint,
                                              protocol::FramingLimits limits) {
  return std::make_unique<UdsConnection>(std::move(socket), std::move(endpoint), limits);
}

}  // namespace quiver::transport::uds
