#include "quiver/sdk/shm_channel.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "quiver/io/deadline.h"
#include "quiver/io/shared_memory.h"
#include "quiver/io/unique_fd.h"
#include "quiver/protocol/frame_codec.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::sdk {
namespace {

// A memfd of `bytes` that the test writes through its own mapping.
struct Arena {
  explicit Arena(int64_t bytes) : fd(::memfd_create("test-arena", MFD_CLOEXEC)), size(bytes) {
    EXPECT_EQ(::ftruncate(fd.get(), bytes), 0);
    data = static_cast<uint8_t*>(::mmap(nullptr, static_cast<size_t>(bytes), PROT_READ | PROT_WRITE,
                                        MAP_SHARED, fd.get(), 0));
  }
  ~Arena() { ::munmap(data, static_cast<size_t>(size)); }

  io::UniqueFd fd;
  int64_t size;
  uint8_t* data;
};

// Sends ShmSetup{input_bytes, output_bytes} in a control frame with `fds` attached, as the
// engine does (docs/protocol.md, section 10).
void SendSetup(int socket, uint64_t input_bytes, uint64_t output_bytes, std::vector<int> fds) {
  v1::EngineMessage message;
  message.mutable_shm_setup()->set_input_bytes(input_bytes);
  message.mutable_shm_setup()->set_output_bytes(output_bytes);
  auto frame = protocol::EncodeControlFrame(arrow::Buffer::FromString(message.SerializeAsString()));
  ASSERT_TRUE(frame.ok());
  ASSERT_TRUE(io::SendWithDescriptors(socket, frame->buffers, fds, io::kNoDeadline).ok());
}

struct SocketPair {
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    engine = io::UniqueFd(fds[0]);
    worker = io::UniqueFd(fds[1]);
  }
  io::UniqueFd engine;
  io::UniqueFd worker;
};

v1::ShmData Region(uint64_t sequence, uint64_t offset, uint64_t length) {
  v1::ShmData data;
  data.set_sequence(sequence);
  data.mutable_region()->set_offset(offset);
  data.mutable_region()->set_length(length);
  return data;
}

TEST(ShmChannel, ReadsInputInPlaceAndWritesResultsIntoRegionsUntilReleased) {
  const int64_t output_bytes = 4 * io::kInlineBelowBytes;
  Arena input(4096), output(output_bytes);
  SocketPair sockets;
  SendSetup(sockets.engine.get(), 4096, output_bytes, {input.fd.get(), output.fd.get()});
  ASSERT_OK_AND_ASSIGN(auto channel, ShmChannel::Open(sockets.worker.get()));

  std::memcpy(input.data + 128, "batch", 5);
  ASSERT_OK_AND_ASSIGN(auto body, channel->Input(Region(3, 128, 5)));
  EXPECT_EQ(body->ToString(), "batch");
  std::memcpy(input.data + 128, "BATCH", 5);
  EXPECT_EQ(body->ToString(), "BATCH") << "read in place, not copied";

  // Small results go inline: the socket is faster for them.
  EXPECT_FALSE(channel->Write({arrow::Buffer::FromString("result")}).has_value());

  // Larger ones: each in its own region, the engine's until released; none when full.
  const std::string text(io::kInlineBelowBytes, 'r');
  const std::vector<std::shared_ptr<arrow::Buffer>> result = {arrow::Buffer::FromString(text),
                                                              arrow::Buffer::FromString("!")};
  auto first = channel->Write(result);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->length(), text.size() + 1);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(output.data + first->offset()), text.size() + 1),
            text + "!");
  const std::vector<std::shared_ptr<arrow::Buffer>> big = {
      std::make_shared<arrow::Buffer>(output.data, output.size - io::kInlineBelowBytes)};
  EXPECT_FALSE(channel->Write(big).has_value()) << "the first result holds part of the arena";
  v1::ShmRelease release;
  *release.add_regions() = *first;
  channel->Release(release);
  EXPECT_TRUE(channel->Write(big).has_value()) << "released: the whole arena is free again";
  channel->Release(release);  // not in use any more: logged and ignored
}

TEST(ShmChannel, RefusesRegionsOutsideTheInputArena) {
  Arena input(4096), output(1024);
  SocketPair sockets;
  SendSetup(sockets.engine.get(), 4096, 1024, {input.fd.get(), output.fd.get()});
  ASSERT_OK_AND_ASSIGN(auto channel, ShmChannel::Open(sockets.worker.get()));
  EXPECT_FALSE(channel->Input(Region(1, 0, 0)).ok()) << "empty";
  EXPECT_FALSE(channel->Input(Region(1, 4000, 97)).ok()) << "past the end";
  EXPECT_FALSE(channel->Input(Region(1, UINT64_MAX - 10, 20)).ok()) << "overflowing";
  auto refused = channel->Input(Region(7, 4096, 1));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("batch 7"), std::string::npos);
  EXPECT_TRUE(channel->Input(Region(1, 4000, 96)).ok()) << "up to the last byte";
}

TEST(ShmChannel, RefusesAnArenaLargerThanItsMemfd) {
  Arena input(4096), output(1024);
  SocketPair sockets;
  // A read past the memfd's end would be a SIGBUS: the size is checked before mapping.
  SendSetup(sockets.engine.get(), 8192, 1024, {input.fd.get(), output.fd.get()});
  auto channel = ShmChannel::Open(sockets.worker.get());
  ASSERT_FALSE(channel.ok());
  EXPECT_NE(channel.status().message().find("8192"), std::string::npos);
}

TEST(ShmChannel, RefusesASetupWithoutItsTwoDescriptors) {
  Arena input(4096);
  SocketPair sockets;
  SendSetup(sockets.engine.get(), 4096, 4096, {input.fd.get()});
  EXPECT_FALSE(ShmChannel::Open(sockets.worker.get()).ok());
}

}  // namespace
}  // namespace quiver::sdk
