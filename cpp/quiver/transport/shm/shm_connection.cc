#include "quiver/transport/shm/shm_connection.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include <google/protobuf/descriptor.h>

#include "quiver/io/unix_socket.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/udf_error.h"
#include "quiver/transport/frame_reader.h"
#include "quiver/transport/shm/result_copies.h"
#include "quiver/transport/shm/shm_arena.h"

namespace quiver::transport::shm {
namespace {

// The output arena as the engine reads it: the regions it copied out, to give
// back to the worker with the next message it sends.
struct OutputState {
  explicit OutputState(std::shared_ptr<SharedArena> mapped) : arena(std::move(mapped)) {}

  std::shared_ptr<SharedArena> arena;
  std::mutex mutex;
  std::vector<std::pair<int64_t, int64_t>> released;  // to tell the worker
};

// The input arena: regions the engine wrote, until the worker answered their batch.
struct InputState {
  explicit InputState(std::shared_ptr<SharedArena> mapped)
      : arena(std::move(mapped)), allocator(arena->size()) {}

  std::shared_ptr<SharedArena> arena;
  std::mutex mutex;
  RegionAllocator allocator;
  std::deque<std::pair<uint64_t, int64_t>> in_flight;  // (sequence, offset), in send order
};

std::string KindName(const v1::WorkerMessage& message) {
  const auto* field = v1::WorkerMessage::descriptor()->FindFieldByNumber(message.kind_case());
  return field == nullptr ? std::string("an empty message") : std::string(field->name());
}

class ShmConnectionImpl : public ShmConnection {
 public:
  ShmConnectionImpl(io::UniqueFd socket, std::string endpoint, protocol::FramingLimits limits)
      : socket_(std::move(socket)),
        endpoint_(std::move(endpoint)),
        reader_(socket_.get(), limits) {}

  ~ShmConnectionImpl() override { Shutdown(); }

  arrow::Status Setup(ArenaSizes sizes, io::Deadline deadline) override {
    ARROW_ASSIGN_OR_RAISE(auto input, SharedArena::Create("quiver-shm-input", sizes.input_bytes,
                                                          /*writable_here=*/true,
                                                          /*seal_future_writes=*/true));
    ARROW_ASSIGN_OR_RAISE(auto output, SharedArena::Create("quiver-shm-output", sizes.output_bytes,
                                                           /*writable_here=*/false,
                                                           /*seal_future_writes=*/false));
    v1::EngineMessage message;
    message.mutable_shm_setup()->set_input_bytes(static_cast<uint64_t>(input->size()));
    message.mutable_shm_setup()->set_output_bytes(static_cast<uint64_t>(output->size()));
    ARROW_ASSIGN_OR_RAISE(auto frame, protocol::EncodeControlFrame(
                                          arrow::Buffer::FromString(message.SerializeAsString())));
    ARROW_RETURN_NOT_OK(io::SendWithDescriptors(socket_.get(), frame.buffers,
                                                {input->fd(), output->fd()}, deadline));
    input->CloseDescriptor();
    output->CloseDescriptor();
    input_ = std::make_unique<InputState>(std::move(input));
    output_ = std::make_shared<OutputState>(std::move(output));
    auto reply = Receive(deadline);
    if (!reply.ok()) {
      return reply.status().WithMessage("the worker did not take the shared memory: ",
                                        reply.status().message());
    }
    if (!reply->control || !reply->control->has_shm_ready()) {
      return arrow::Status::IOError("the worker answered ShmSetup with ",
                                    reply->control ? KindName(*reply->control) : "a data frame",
                                    " instead of ShmReady: it does not speak the shm transport");
    }
    return arrow::Status::OK();
  }

  arrow::Status SendControl(const v1::EngineMessage& message, io::Deadline deadline) override {
    ARROW_ASSIGN_OR_RAISE(auto frames, TakeReleases());
    ARROW_RETURN_NOT_OK(AppendMessage(message, &frames));
    return io::SendAll(socket_.get(), frames, deadline);
  }

  arrow::Status SendBatch(uint64_t sequence, const arrow::RecordBatch& batch,
                          io::Deadline deadline) override {
    ARROW_ASSIGN_OR_RAISE(auto frames, TakeReleases());
    ARROW_ASSIGN_OR_RAISE(auto body, protocol::EncodeBatchStream(batch));
    int64_t length = 0;
    for (const auto& part : body) length += part->size();
    std::optional<int64_t> offset;
    if (length >= io::kInlineBelowBytes) offset = Reserve(sequence, length);
    if (!offset) {  // small, or no room: inline, as over uds
      ARROW_ASSIGN_OR_RAISE(auto frame, protocol::EncodeDataFrame(sequence, std::move(body)));
      frames.insert(frames.end(), frame.buffers.begin(), frame.buffers.end());
      return io::SendAll(socket_.get(), frames, deadline);
    }
    uint8_t* out = input_->arena->data() + *offset;
    for (const auto& part : body) {
      std::memcpy(out, part->data(), static_cast<size_t>(part->size()));
      out += part->size();
    }
    v1::EngineMessage message;
    v1::ShmData* data = message.mutable_shm_data();
    data->set_sequence(sequence);
    data->mutable_region()->set_offset(static_cast<uint64_t>(*offset));
    data->mutable_region()->set_length(static_cast<uint64_t>(length));
    ARROW_RETURN_NOT_OK(AppendMessage(message, &frames));
    return io::SendAll(socket_.get(), frames, deadline);
  }

  arrow::Result<WorkerReply> Receive(io::Deadline deadline) override {
    ARROW_ASSIGN_OR_RAISE(protocol::Frame frame, ReadFrame(deadline));
    WorkerReply reply;
    if (frame.kind == protocol::FrameKind::kData) {
      reply.sequence = frame.sequence;
      ARROW_ASSIGN_OR_RAISE(reply.batch, DecodeResult(frame.sequence, frame.body));
      ReleaseInputUpTo(frame.sequence);
      return reply;
    }
    reply.control.emplace();
    if (!reply.control->ParseFromArray(frame.metadata->data(),
                                       static_cast<int>(frame.metadata->size()))) {
      return arrow::Status::IOError(
          "the worker sent a control frame that is not a valid quiver.v1.WorkerMessage (",
          frame.metadata->size(), " bytes)");
    }
    if (reply.control->has_shm_data()) return ReceiveShared(reply.control->shm_data());
    if (reply.control->has_finish_response() || reply.control->has_cancel_response()) {
      ReleaseInputUpTo(UINT64_MAX);  // the execution is over: the worker reads nothing more
    }
    return reply;
  }

  void Shutdown() override {
    std::lock_guard<std::mutex> lock(shutdown_mutex_);
    if (!shut_down_ && socket_.valid()) ::shutdown(socket_.get(), SHUT_RDWR);
    shut_down_ = true;
  }

  std::string endpoint() const override { return endpoint_; }

  bool ReceiveKeepsDeadline() const override { return true; }

 private:
  // Appends the control frame of `message` to `frames`.
  static arrow::Status AppendMessage(const v1::EngineMessage& message,
                                     std::vector<std::shared_ptr<arrow::Buffer>>* frames) {
    ARROW_ASSIGN_OR_RAISE(auto frame, protocol::EncodeControlFrame(
                                          arrow::Buffer::FromString(message.SerializeAsString())));
    frames->insert(frames->end(), frame.buffers.begin(), frame.buffers.end());
    return arrow::Status::OK();
  }

  // Returns the ShmRelease of the result regions the engine dropped since the
  // last message, framed (empty when there are none): it goes out in one write
  // with the next message, which the worker reads after it.
  arrow::Result<std::vector<std::shared_ptr<arrow::Buffer>>> TakeReleases() {
    std::vector<std::shared_ptr<arrow::Buffer>> frames;
    if (output_ == nullptr) return frames;
    std::vector<std::pair<int64_t, int64_t>> released;
    {
      std::lock_guard<std::mutex> lock(output_->mutex);
      released.swap(output_->released);
    }
    if (released.empty()) return frames;
    v1::EngineMessage message;
    for (const auto& [offset, length] : released) {
      v1::ShmRegion* region = message.mutable_shm_release()->add_regions();
      region->set_offset(static_cast<uint64_t>(offset));
      region->set_length(static_cast<uint64_t>(length));
    }
    ARROW_RETURN_NOT_OK(AppendMessage(message, &frames));
    return frames;
  }

  std::optional<int64_t> Reserve(uint64_t sequence, int64_t length) {
    if (input_ == nullptr) return std::nullopt;
    std::lock_guard<std::mutex> lock(input_->mutex);
    std::optional<int64_t> offset = input_->allocator.Allocate(length);
    if (offset) input_->in_flight.emplace_back(sequence, *offset);
    return offset;
  }

  // The worker answers in order: once it answered `sequence`, it reads no
  // input region of that batch or of an earlier one.
  void ReleaseInputUpTo(uint64_t sequence) {
    if (input_ == nullptr) return;
    std::lock_guard<std::mutex> lock(input_->mutex);
    while (!input_->in_flight.empty() && input_->in_flight.front().first <= sequence) {
      input_->allocator.Free(input_->in_flight.front().second);
      input_->in_flight.pop_front();
    }
  }

  // A result the worker wrote into the output arena: every number is checked
  // against the mapping before a byte of it is read, and the bytes are copied
  // out (and the region given back) before they are decoded.
  arrow::Result<WorkerReply> ReceiveShared(const v1::ShmData& data) {
    const uint64_t offset = data.region().offset();
    const uint64_t length = data.region().length();
    auto refuse = [&](const std::string& why) {
      return arrow::Status::IOError("the worker sent a result for batch ", data.sequence(),
                                    " in shared memory at offset ", offset, ", length ", length,
                                    ", which ", why);
    };
    if (output_ == nullptr) return refuse("came before the shared memory was set up");
    if (length == 0) return refuse("is empty (an Arrow IPC stream is at least 8 bytes)");
    if (offset % 8 != 0) return refuse("is not 8-byte aligned");
    if (!RegionFits(offset, length, output_->arena->size())) {
      return refuse("lies outside the output arena of " + std::to_string(output_->arena->size()) +
                    " bytes");
    }
    const auto start = static_cast<int64_t>(offset);
    const auto size = static_cast<int64_t>(length);
    // Copied out before a byte is decoded: the worker keeps its writable
    // mapping of the arena, so what the engine validates must be its own copy.
    ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> buffer,
                          copies_->Copy(output_->arena->data() + start, size));
    {
      std::lock_guard<std::mutex> lock(output_->mutex);
      output_->released.emplace_back(start, size);
    }
    WorkerReply reply;
    reply.sequence = data.sequence();
    ARROW_ASSIGN_OR_RAISE(reply.batch, DecodeResult(data.sequence(), std::move(buffer)));
    ReleaseInputUpTo(data.sequence());
    return reply;
  }

  static arrow::Result<std::shared_ptr<arrow::RecordBatch>> DecodeResult(
      uint64_t sequence, std::shared_ptr<arrow::Buffer> body) {
    auto batch = protocol::DecodeBatchStream(std::move(body));
    if (!batch.ok()) {
      return AsProtocolViolation(batch.status().WithMessage(
          "the worker sent a result for batch ", sequence,
          " that is not a valid Arrow IPC stream: ", batch.status().message()));
    }
    return batch;
  }

  arrow::Result<protocol::Frame> ReadFrame(io::Deadline deadline) { return reader_.Next(deadline); }

  io::UniqueFd socket_;
  std::string endpoint_;
  FrameReader reader_;  // used by the receiving thread only
  std::unique_ptr<InputState> input_;
  std::shared_ptr<OutputState> output_;
  std::shared_ptr<ResultCopies> copies_ = ResultCopies::Make();
  std::mutex shutdown_mutex_;
  bool shut_down_ = false;
};

}  // namespace

ArenaSizes DefaultArenaSizes() {
  ArenaSizes sizes;
  if (const char* text = std::getenv("QUIVER_SHM_ARENA_BYTES"); text != nullptr && *text != '\0') {
    const long long bytes = std::atoll(text);
    if (bytes > 0) sizes.input_bytes = sizes.output_bytes = bytes;
  }
  return sizes;
}

std::unique_ptr<ShmConnection> MakeShmConnection(io::UniqueFd socket, std::string endpoint,
                                                 protocol::FramingLimits limits) {
  return std::make_unique<ShmConnectionImpl>(std::move(socket), std::move(endpoint), limits);
}

}  // namespace quiver::transport::shm
