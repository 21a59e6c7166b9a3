#include "quiver/sdk/uds_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>

#include <arrow/buffer.h>
#include <arrow/io/memory.h>

#include "quiver/io/unix_socket.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/frame_codec.h"
#include "quiver/sdk/errors.h"
#include "quiver/sdk/hello.h"
#include "quiver/sdk/log.h"
#include "quiver/sdk/shm_channel.h"
#include "quiver/sdk/stop_watcher.h"
#include "quiver/sdk/worker_state.h"

namespace quiver::sdk {
namespace {

constexpr char kUnixScheme[] = "unix:";
constexpr char kShmScheme[] = "shm:";

// Writes the state machine's answers as frames; over shm, a result goes into
// the output arena and its frame names the region (inline when there is no room).
class FrameSink : public MessageSink {
 public:
  explicit FrameSink(int fd) : fd_(fd) {}

  void UseSharedMemory(ShmChannel* channel) { shm_ = channel; }

  arrow::Status SendControl(const v1::WorkerMessage& message) override {
    auto buffer = arrow::Buffer::FromString(message.SerializeAsString());
    ARROW_ASSIGN_OR_RAISE(auto frame, protocol::EncodeControlFrame(std::move(buffer)));
    return io::SendAll(fd_, frame.buffers, io::kNoDeadline);
  }

  arrow::Status SendData(uint64_t sequence, const arrow::RecordBatch& batch) override {
    ARROW_ASSIGN_OR_RAISE(auto body, protocol::EncodeBatchStream(batch));
    if (shm_ != nullptr) {
      if (std::optional<v1::ShmRegion> region = shm_->Write(body)) {
        v1::WorkerMessage message;
        message.mutable_shm_data()->set_sequence(sequence);
        *message.mutable_shm_data()->mutable_region() = std::move(*region);
        return SendControl(message);
      }
    }
    ARROW_ASSIGN_OR_RAISE(auto frame, protocol::EncodeDataFrame(sequence, std::move(body)));
    return io::SendAll(fd_, frame.buffers, io::kNoDeadline);
  }

 private:
  int fd_;
  ShmChannel* shm_ = nullptr;
};

// What reading the next frame found.
struct Incoming {
  std::optional<protocol::Frame> frame;  // empty: the engine closed at a frame boundary
  arrow::Status bad_frame;               // a header that breaks the framing rules
};

class UdsServer {
 public:
  // `shared_memory`: the connection is the shm transport's (ShmSetup follows Hello).
  UdsServer(io::UniqueFd socket, const Registry* registry, bool shared_memory)
      : socket_(std::move(socket)),
        shared_memory_(shared_memory),
        sink_(socket_.get()),
        machine_(registry, &sink_) {}

  // Serves until the end; returns the exit status.
  int Serve(const WorkerOptions& options, const std::string& secret) {
    auto watcher = StopWatcher::Start(/*watch_parent=*/false, [this](const std::string& reason) {
      Log(LogLevel::kInfo, reason + ": exiting");
      stopping_ = true;
      ::shutdown(socket_.get(), SHUT_RD);  // the blocked read returns the end of the stream
    });
    if (!watcher.ok()) return Lost(watcher.status());
    v1::WorkerMessage hello;
    *hello.mutable_hello() = MakeHello(options.id, secret);
    if (auto sent = sink_.SendControl(hello); !sent.ok()) return Lost(sent);
    if (shared_memory_) {
      if (auto opened = OpenSharedMemory(); !opened.ok()) {
        Log(LogLevel::kError, "cannot set up shared memory with the engine: " + opened.message());
        return Exit(kExitConnectionLost);
      }
    }
    while (true) {
      auto incoming = ReadFrame();
      if (stopping_) return Exit(kExitOk);
      if (!incoming.ok()) return Lost(incoming.status());
      if (!incoming->bad_frame.ok()) return RejectFrame(incoming->bad_frame);
      if (!incoming->frame) {
        Log(LogLevel::kInfo, "the engine closed the connection; exiting");
        return Exit(kExitOk);
      }
      bool go_on = true;
      if (auto handled = Handle(*incoming->frame, &go_on); !handled.ok()) return Lost(handled);
      if (!go_on) return Exit(kExitOk);
    }
  }

 private:
  // Takes the arenas the engine sends after Hello and answers ShmReady.
  arrow::Status OpenSharedMemory() {
    ARROW_ASSIGN_OR_RAISE(shm_, ShmChannel::Open(socket_.get()));
    sink_.UseSharedMemory(shm_.get());
    v1::WorkerMessage ready;
    ready.mutable_shm_ready();
    return sink_.SendControl(ready);
  }

  arrow::Result<Incoming> ReadFrame() {
    uint8_t header_bytes[protocol::kFrameHeaderSize];
    ARROW_ASSIGN_OR_RAISE(int64_t got, Take(header_bytes, protocol::kFrameHeaderSize));
    Incoming incoming;
    if (got == 0) return incoming;
    if (got < protocol::kFrameHeaderSize) return Truncated();
    auto header = protocol::ReadFrameHeader(header_bytes, protocol::FramingLimits{});
    if (!header.ok()) {
      incoming.bad_frame = header.status();
      return incoming;
    }
    protocol::Frame frame;
    frame.kind = header->kind;
    frame.sequence = header->sequence;
    ARROW_ASSIGN_OR_RAISE(frame.metadata, ReadPart(header->metadata_length));
    ARROW_ASSIGN_OR_RAISE(frame.body, ReadPart(header->body_length));
    incoming.frame = std::move(frame);
    return incoming;
  }

  // Reads `length` bytes into one 64-byte-aligned buffer that Arrow slices in place.
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadPart(int64_t length) {
    ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> buffer, arrow::AllocateBuffer(length));
    ARROW_ASSIGN_OR_RAISE(int64_t got, Take(buffer->mutable_data(), length));
    if (got < length) return Truncated();
    return buffer;
  }

  // Puts the next `length` bytes of the stream into `out`: the staged ones
  // first, then a large rest straight from the socket, a small one through the
  // staging buffer. Returns fewer only when the engine closed the connection.
  arrow::Result<int64_t> Take(uint8_t* out, int64_t length) {
    int64_t taken = std::min(length, staged_end_ - staged_begin_);
    std::memcpy(out, staging_.data() + staged_begin_, static_cast<size_t>(taken));
    staged_begin_ += taken;
    const int64_t rest = length - taken;
    if (rest == 0) return length;
    if (rest >= kStagingBytes) {
      ARROW_ASSIGN_OR_RAISE(int64_t got,
                            io::ReceiveAll(socket_.get(), out + taken, rest, io::kNoDeadline));
      return taken + got;
    }
    ARROW_RETURN_NOT_OK(Stage(rest));
    const int64_t now = std::min(rest, staged_end_);
    std::memcpy(out + taken, staging_.data(), static_cast<size_t>(now));
    staged_begin_ = now;
    return taken + now;
  }

  // Reads into the empty staging buffer until it holds `wanted` bytes or the
  // stream ended: each read takes whatever has arrived, so the header and body
  // of a small frame (a 1-row batch) come in one read, not one read each.
  arrow::Status Stage(int64_t wanted) {
    staged_begin_ = staged_end_ = 0;
    while (staged_end_ < wanted) {
      const ssize_t got = ::recv(socket_.get(), staging_.data() + staged_end_,
                                 static_cast<size_t>(kStagingBytes - staged_end_), 0);
      if (got > 0) {
        staged_end_ += got;
        continue;
      }
      if (got == 0 || errno == ECONNRESET) return arrow::Status::OK();  // the end of the stream
      if (errno != EINTR) {
        return arrow::Status::IOError("receive from the engine: ", std::strerror(errno));
      }
    }
    return arrow::Status::OK();
  }

  static arrow::Status Truncated() {
    return arrow::Status::IOError("the connection ended inside a frame");
  }

  arrow::Status Handle(const protocol::Frame& frame, bool* go_on) {
    if (frame.kind == protocol::FrameKind::kData) {
      return machine_.OnBatch(frame.sequence,
                              std::make_shared<arrow::io::BufferReader>(frame.body));
    }
    v1::EngineMessage message;
    if (!message.ParseFromArray(frame.metadata->data(), static_cast<int>(frame.metadata->size()))) {
      return machine_.Reject("a control frame does not hold a quiver.v1.EngineMessage");
    }
    if (message.has_data()) {
      return machine_.Reject(
          "EngineMessage.data must not be sent over uds; batches travel as data frames");
    }
    if (message.has_shutdown()) return OnShutdown(message.shutdown(), go_on);
    if (shm_ != nullptr && message.has_shm_release()) {
      shm_->Release(message.shm_release());  // at once, without an answer
      return arrow::Status::OK();
    }
    if (shm_ != nullptr && message.has_shm_data()) return OnSharedBatch(message.shm_data());
    return machine_.OnMessage(message);  // the state machine refuses shm messages over uds
  }

  // A batch in the input arena, read in place: the region is the worker's until
  // it answered the batch, which OnBatch does before it returns.
  arrow::Status OnSharedBatch(const v1::ShmData& data) {
    auto body = shm_->Input(data);
    if (!body.ok()) return machine_.Reject(body.status().message(), data.sequence());
    return machine_.OnBatch(data.sequence(), std::make_shared<arrow::io::BufferReader>(*body));
  }

  // Echoes Shutdown and stops, when idle or told to cancel the running execution.
  arrow::Status OnShutdown(const v1::Shutdown& shutdown, bool* go_on) {
    if (machine_.state() != WorkerState::kIdle && !shutdown.cancel_running()) {
      return machine_.Reject("Shutdown during an execution (set cancel_running to stop it)");
    }
    machine_.Close();
    v1::WorkerMessage answer;
    answer.mutable_shutdown()->set_cancel_running(shutdown.cancel_running());
    *go_on = false;
    Log(LogLevel::kInfo, "Shutdown: exiting");
    return sink_.SendControl(answer);
  }

  // A bad frame: the byte stream cannot be trusted any more (docs/protocol.md, section 4).
  int RejectFrame(const arrow::Status& problem) {
    Log(LogLevel::kError, "bad frame from the engine: " + problem.message());
    v1::WorkerMessage answer;
    *answer.mutable_error() = ErrorOf(ProtocolError("bad frame: " + problem.message()));
    (void)sink_.SendControl(answer);  // best effort
    return Exit(kExitConnectionLost);
  }

  int Lost(const arrow::Status& status) {
    Log(LogLevel::kError, "connection to the engine lost: " + status.ToString());
    return Exit(kExitConnectionLost);
  }

  int Exit(int status) {
    machine_.Close();
    socket_.Reset();
    return status;
  }

  io::UniqueFd socket_;
  // Frames read ahead of use (Take); only the frame loop reads through it,
  // after the shared memory setup took its descriptors off the socket.
  static constexpr int64_t kStagingBytes = 4096;
  std::array<uint8_t, kStagingBytes> staging_;
  int64_t staged_begin_ = 0;
  int64_t staged_end_ = 0;
  bool shared_memory_;
  std::unique_ptr<ShmChannel> shm_;  // over shm, once set up
  FrameSink sink_;
  WorkerStateMachine machine_;
  std::atomic<bool> stopping_{false};
};

}  // namespace

int ServeUds(const WorkerOptions& options, const std::string& secret, const Registry& registry) {
  const bool shared_memory = options.connection.rfind(kShmScheme, 0) == 0;
  if (!shared_memory && options.connection.rfind(kUnixScheme, 0) != 0) {
    Log(LogLevel::kError, "unsupported endpoint '" + options.connection +
                              "': the uds transport connects to unix:/path/to/socket, "
                              "the shm transport to shm:/path/to/socket");
    return kExitUsage;
  }
  const std::string path =
      options.connection.substr(shared_memory ? sizeof(kShmScheme) - 1 : sizeof(kUnixScheme) - 1);
  auto socket = io::ConnectUnixSocket(path);
  if (!socket.ok()) {
    Log(LogLevel::kError,
        "cannot connect to " + options.connection + ": " + socket.status().ToString());
    return kExitConnectionLost;
  }
  Log(LogLevel::kInfo,
      "connected to " + options.connection + " (pid " + std::to_string(::getpid()) + ")");
  UdsServer server(*std::move(socket), &registry, shared_memory);
  return server.Serve(options, secret);
}

}  // namespace quiver::sdk
