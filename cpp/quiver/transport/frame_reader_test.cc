#include "quiver/transport/frame_reader.h"

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "quiver/io/unique_fd.h"
#include "quiver/io/unix_socket.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::transport {
namespace {

struct SocketPair {
  io::UniqueFd reader;
  io::UniqueFd writer;
};

SocketPair Connected() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {io::UniqueFd(fds[0]), io::UniqueFd(fds[1])};
}

std::string FrameBytes(protocol::FrameKind kind, uint64_t sequence, const std::string& payload) {
  auto bytes = arrow::Buffer::FromString(payload);
  protocol::EncodedFrame frame = kind == protocol::FrameKind::kControl
                                     ? protocol::EncodeControlFrame(bytes).ValueOrDie()
                                     : protocol::EncodeDataFrame(sequence, {bytes}).ValueOrDie();
  std::string joined;
  for (const auto& part : frame.buffers) joined += part->ToString();
  return joined;
}

void Write(const io::UniqueFd& socket, const std::string& bytes) {
  ASSERT_OK(io::SendAll(socket.get(), {arrow::Buffer::FromString(bytes)}, io::kNoDeadline));
}

TEST(FrameReader, ReadsSeveralSmallFramesThatArrivedTogether) {
  SocketPair ends = Connected();
  Write(ends.writer, FrameBytes(protocol::FrameKind::kControl, 0, "first") +
                         FrameBytes(protocol::FrameKind::kData, 9, "a body") +
                         FrameBytes(protocol::FrameKind::kControl, 0, "last"));
  FrameReader reader(ends.reader.get(), {});
  ASSERT_OK_AND_ASSIGN(auto first, reader.Next(io::kNoDeadline));
  EXPECT_EQ(first.kind, protocol::FrameKind::kControl);
  EXPECT_EQ(first.metadata->ToString(), "first");
  ASSERT_OK_AND_ASSIGN(auto data, reader.Next(io::kNoDeadline));
  EXPECT_EQ(data.kind, protocol::FrameKind::kData);
  EXPECT_EQ(data.sequence, 9u);
  EXPECT_EQ(data.body->ToString(), "a body");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(data.body->data()) % 64, 0u) << "a body is aligned";
  ASSERT_OK_AND_ASSIGN(auto last, reader.Next(io::kNoDeadline));
  EXPECT_EQ(last.metadata->ToString(), "last");
  // What a frame holds stays as it was while later frames are read.
  Write(ends.writer, FrameBytes(protocol::FrameKind::kControl, 0, "XXXXX"));
  ASSERT_OK_AND_ASSIGN(auto again, reader.Next(io::kNoDeadline));
  EXPECT_EQ(again.metadata->ToString(), "XXXXX");
  EXPECT_EQ(first.metadata->ToString(), "first");
  EXPECT_EQ(last.metadata->ToString(), "last");
}

TEST(FrameReader, ReadsABodyLargerThanTheStagingWholeWhateverHowItArrives) {
  SocketPair ends = Connected();
  std::string body(3 * FrameReader::kStagingBytes + 17, 'b');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  const std::string bytes = FrameBytes(protocol::FrameKind::kData, 4, body) +
                            FrameBytes(protocol::FrameKind::kControl, 0, "after");
  std::thread writer([&] {  // in pieces that cut the frame anywhere
    for (size_t at = 0; at < bytes.size(); at += 1000) Write(ends.writer, bytes.substr(at, 1000));
  });
  FrameReader reader(ends.reader.get(), {});
  ASSERT_OK_AND_ASSIGN(auto data, reader.Next(io::kNoDeadline));
  ASSERT_OK_AND_ASSIGN(auto after, reader.Next(io::kNoDeadline));
  writer.join();
  EXPECT_EQ(data.body->ToString(), body);
  EXPECT_EQ(after.metadata->ToString(), "after");
}

TEST(FrameReader, SaysWhetherTheWorkerClosedBetweenFramesOrInTheMiddleOfOne) {
  {
    SocketPair ends = Connected();
    ends.writer.Reset();
    FrameReader reader(ends.reader.get(), {});
    auto frame = reader.Next(io::kNoDeadline);
    ASSERT_FALSE(frame.ok());
    EXPECT_EQ(frame.status().message(), "the worker closed the connection");
  }
  SocketPair ends = Connected();
  const std::string bytes = FrameBytes(protocol::FrameKind::kData, 1, std::string(100, 'x'));
  Write(ends.writer, bytes.substr(0, 40));
  ends.writer.Reset();
  FrameReader reader(ends.reader.get(), {});
  auto frame = reader.Next(io::kNoDeadline);
  ASSERT_FALSE(frame.ok());
  EXPECT_NE(frame.status().message().find("in the middle of a frame body (8 of 100 bytes"),
            std::string::npos)
      << frame.status().ToString();
}

TEST(FrameReader, GivesUpAtTheDeadline) {
  SocketPair ends = Connected();
  FrameReader reader(ends.reader.get(), {});
  auto frame = reader.Next(io::DeadlineIn(std::chrono::milliseconds(20)));
  ASSERT_FALSE(frame.ok());
  EXPECT_NE(frame.status().message().find("timed out"), std::string::npos);
}

TEST(FrameReader, RefusesAFrameOverTheLimits) {
  SocketPair ends = Connected();
  Write(ends.writer, FrameBytes(protocol::FrameKind::kData, 1, std::string(100, 'x')));
  protocol::FramingLimits limits;
  limits.max_body_bytes = 64;
  FrameReader reader(ends.reader.get(), limits);
  EXPECT_FALSE(reader.Next(io::kNoDeadline).ok());
}

// What a stream decodes to: its frames as (kind, sequence, metadata, body), and
// whether it ended in an error rather than between two frames.
struct Decoded {
  std::vector<std::string> frames;
  bool failed = false;
};

std::string Describe(const protocol::Frame& frame) {
  return std::to_string(static_cast<int>(frame.kind)) + "/" + std::to_string(frame.sequence) + "/" +
         frame.metadata->ToString() + "/" + frame.body->ToString();
}

// The reference: the frame decoder given the whole stream at once.
Decoded DecodeWhole(const std::string& bytes, protocol::FramingLimits limits) {
  protocol::FrameDecoder decoder(limits);
  Decoded decoded;
  decoded.failed = !decoder.Consume(arrow::Buffer::FromString(bytes)).ok();
  while (auto frame = decoder.Next()) decoded.frames.push_back(Describe(*frame));
  if (!decoded.failed) decoded.failed = !decoder.Finish().ok();
  return decoded;
}

TEST(FrameReader, ReadsWhatTheDecoderReadsFromAnyStreamInAnyPieces) {
  // Random streams of frames, some with a byte changed or cut short, written in
  // random pieces: the reader gives the frames the decoder finds in the whole
  // stream, in order, then an error, and never anything else.
  protocol::FramingLimits limits;
  limits.max_metadata_bytes = 4096;
  limits.max_body_bytes = 64 << 10;
  for (uint32_t seed = 0; seed < 300; ++seed) {
    std::mt19937 random(seed);
    std::string bytes;
    const int count = static_cast<int>(random() % 6);
    for (int i = 0; i < count; ++i) {
      const bool data = random() % 2 == 0;
      std::string payload(random() % (data ? 20000 : 300), 'p');
      for (char& c : payload) c = static_cast<char>('a' + random() % 26);
      bytes += FrameBytes(data ? protocol::FrameKind::kData : protocol::FrameKind::kControl,
                          random() % 100, payload);
    }
    if (!bytes.empty() && random() % 2 == 0) bytes[random() % bytes.size()] ^= 0x5a;
    if (!bytes.empty() && random() % 4 == 0) bytes.resize(random() % bytes.size());
    const Decoded expected = DecodeWhole(bytes, limits);

    SocketPair ends = Connected();
    std::thread writer([&] {
      for (size_t at = 0; at < bytes.size();) {
        const size_t piece = 1 + random() % 9000;
        Write(ends.writer, bytes.substr(at, piece));
        at += piece;
      }
      ends.writer.Reset();
    });
    FrameReader reader(ends.reader.get(), limits);
    Decoded got;
    while (true) {
      auto frame = reader.Next(io::kNoDeadline);
      if (!frame.ok()) break;
      got.frames.push_back(Describe(*frame));
      ASSERT_LE(got.frames.size(), expected.frames.size()) << "seed " << seed;
    }
    writer.join();
    EXPECT_EQ(got.frames, expected.frames) << "seed " << seed;
  }
}

}  // namespace
}  // namespace quiver::transport
