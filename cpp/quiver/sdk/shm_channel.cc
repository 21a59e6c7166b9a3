#include "quiver/sdk/shm_channel.h"

#include <cstring>
#include <utility>

#include "quiver/io/unix_socket.h"
#include "quiver/protocol/frame_codec.h"
#include "quiver/sdk/log.h"

namespace quiver::sdk {
namespace {

// Reads one control frame whose first bytes carry descriptors; returns its message bytes.
arrow::Result<std::string> ReadSetupFrame(int socket, std::vector<io::UniqueFd>* descriptors) {
  uint8_t header_bytes[protocol::kFrameHeaderSize];
  ARROW_ASSIGN_OR_RAISE(int64_t got, io::ReceiveWithDescriptors(socket, header_bytes,
                                                                sizeof(header_bytes), descriptors));
  if (got < protocol::kFrameHeaderSize) {
    return arrow::Status::IOError("the engine closed the connection instead of sending ShmSetup");
  }
  ARROW_ASSIGN_OR_RAISE(auto header,
                        protocol::ReadFrameHeader(header_bytes, protocol::FramingLimits{}));
  if (header.kind != protocol::FrameKind::kControl || header.body_length != 0) {
    return arrow::Status::IOError("the engine sent a data frame instead of ShmSetup");
  }
  std::string metadata(static_cast<size_t>(header.metadata_length), '\0');
  ARROW_ASSIGN_OR_RAISE(got, io::ReceiveAll(socket, reinterpret_cast<uint8_t*>(metadata.data()),
                                            header.metadata_length, io::kNoDeadline));
  if (got < header.metadata_length) {
    return arrow::Status::IOError("the connection ended inside the ShmSetup frame");
  }
  return metadata;
}

}  // namespace

arrow::Result<std::unique_ptr<ShmChannel>> ShmChannel::Open(int socket) {
  std::vector<io::UniqueFd> descriptors;
  ARROW_ASSIGN_OR_RAISE(std::string bytes, ReadSetupFrame(socket, &descriptors));
  v1::EngineMessage message;
  if (!message.ParseFromString(bytes) || !message.has_shm_setup() || descriptors.size() != 2) {
    return arrow::Status::IOError("expected ShmSetup with 2 descriptors after Hello, got a ",
                                  message.has_shm_setup() ? "ShmSetup" : "message of another kind",
                                  " with ", descriptors.size());
  }
  const v1::ShmSetup& setup = message.shm_setup();
  const auto input_bytes = static_cast<int64_t>(setup.input_bytes());
  const auto output_bytes = static_cast<int64_t>(setup.output_bytes());
  ARROW_ASSIGN_OR_RAISE(auto input, io::MemoryMapping::Map(descriptors[0].get(), input_bytes,
                                                           /*writable=*/false));
  ARROW_ASSIGN_OR_RAISE(auto output, io::MemoryMapping::Map(descriptors[1].get(), output_bytes,
                                                            /*writable=*/true));
  // The descriptors close here: the mappings are all the worker keeps.
  return std::unique_ptr<ShmChannel>(new ShmChannel(std::move(input), std::move(output)));
}

arrow::Result<std::shared_ptr<arrow::Buffer>> ShmChannel::Input(const v1::ShmData& data) const {
  const uint64_t offset = data.region().offset();
  const uint64_t length = data.region().length();
  if (length == 0 || !io::RegionFits(offset, length, input_->size())) {
    return arrow::Status::Invalid("ShmData for batch ", data.sequence(), " names ", length,
                                  " bytes at offset ", offset, ", outside the input arena of ",
                                  input_->size(), " bytes");
  }
  // Not owned: the engine keeps the region until the worker answered the batch.
  return std::make_shared<arrow::Buffer>(input_->data() + offset, static_cast<int64_t>(length));
}

std::optional<v1::ShmRegion> ShmChannel::Write(
    const std::vector<std::shared_ptr<arrow::Buffer>>& body) {
  int64_t length = 0;
  for (const auto& part : body) length += part->size();
  if (length < io::kInlineBelowBytes) return std::nullopt;  // the socket is faster for these
  const std::optional<int64_t> offset = allocator_.Allocate(length);
  if (!offset) return std::nullopt;
  uint8_t* out = output_->data() + *offset;
  for (const auto& part : body) {
    std::memcpy(out, part->data(), static_cast<size_t>(part->size()));
    out += part->size();
  }
  v1::ShmRegion region;
  region.set_offset(static_cast<uint64_t>(*offset));
  region.set_length(static_cast<uint64_t>(length));
  return region;
}

void ShmChannel::Release(const v1::ShmRelease& release) {
  for (const v1::ShmRegion& region : release.regions()) {
    const auto offset = static_cast<int64_t>(region.offset());
    if (region.offset() > static_cast<uint64_t>(output_->size()) || !allocator_.Free(offset)) {
      Log(LogLevel::kWarning, "ShmRelease of offset " + std::to_string(region.offset()) +
                                  ", which is not in use: ignored");
    }
  }
}

}  // namespace quiver::sdk
