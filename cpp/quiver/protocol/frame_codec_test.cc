#include "quiver/protocol/frame_codec.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "quiver/testing/status_matchers.h"
#include "quiver/v1/quiver.pb.h"

namespace quiver::protocol {
namespace {

std::shared_ptr<arrow::Buffer> Join(const EncodedFrame& frame) {
  std::string bytes;
  for (const auto& buffer : frame.buffers) bytes += buffer->ToString();
  return arrow::Buffer::FromString(std::move(bytes));
}

std::shared_ptr<arrow::Buffer> FinishMessage() {
  v1::EngineMessage message;
  message.mutable_finish();
  return arrow::Buffer::FromString(message.SerializeAsString());
}

TEST(FrameCodec, ControlFrameMatchesTheSpecExampleByteForByte) {
  ASSERT_OK_AND_ASSIGN(auto frame, EncodeControlFrame(FinishMessage()));
  const uint8_t expected[] = {0x51, 0x56, 0x52, 0x31, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    2,
                              0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x22, 0};
  auto bytes = Join(frame);
  ASSERT_EQ(bytes->size(), static_cast<int64_t>(sizeof(expected)));
  EXPECT_EQ(std::memcmp(bytes->data(), expected, sizeof(expected)), 0);
}

TEST(FrameCodec, DataFrameReferencesTheBodyBuffersWithoutCopying) {
  auto first = arrow::Buffer::FromString(std::string(1000, 'a'));
  auto second = arrow::Buffer::FromString(std::string(24, 'b'));
  ASSERT_OK_AND_ASSIGN(auto frame, EncodeDataFrame(7, {first, second}));
  ASSERT_EQ(frame.buffers.size(), 3u);
  EXPECT_EQ(frame.buffers[1]->data(), first->data());
  EXPECT_EQ(frame.buffers[2]->data(), second->data());
  ASSERT_OK_AND_ASSIGN(auto header, ReadFrameHeader(frame.buffers[0]->data(), {}));
  EXPECT_EQ(header.kind, FrameKind::kData);
  EXPECT_EQ(header.sequence, 7u);
  EXPECT_EQ(header.body_length, 1024);
  EXPECT_EQ(frame.size(), kFrameHeaderSize + 1024);
}

TEST(FrameCodec, DecoderYieldsFramesFromAnyChunking) {
  ASSERT_OK_AND_ASSIGN(auto control, EncodeControlFrame(FinishMessage()));
  ASSERT_OK_AND_ASSIGN(auto data, EncodeDataFrame(3, {arrow::Buffer::FromString("payload")}));
  ASSERT_OK_AND_ASSIGN(auto empty, EncodeDataFrame(4, {}));
  std::string stream = Join(control)->ToString() + Join(data)->ToString() + Join(empty)->ToString();
  for (size_t chunk_size = 1; chunk_size <= stream.size(); ++chunk_size) {
    FrameDecoder decoder;
    for (size_t offset = 0; offset < stream.size(); offset += chunk_size) {
      ASSERT_OK(decoder.Consume(arrow::Buffer::FromString(stream.substr(offset, chunk_size))));
    }
    ASSERT_OK(decoder.Finish());
    auto first = decoder.Next();
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->kind, FrameKind::kControl);
    v1::EngineMessage message;
    ASSERT_TRUE(
        message.ParseFromArray(first->metadata->data(), static_cast<int>(first->metadata->size())));
    EXPECT_TRUE(message.has_finish());
    auto second = decoder.Next();
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->kind, FrameKind::kData);
    EXPECT_EQ(second->sequence, 3u);
    EXPECT_EQ(second->body->ToString(), "payload");
    auto third = decoder.Next();
    ASSERT_TRUE(third.has_value());
    EXPECT_EQ(third->sequence, 4u);
    EXPECT_EQ(third->body->size(), 0);
    EXPECT_FALSE(decoder.Next().has_value());
  }
}

TEST(FrameCodec, BodyInsideOneChunkIsASliceOfIt) {
  ASSERT_OK_AND_ASSIGN(auto data, EncodeDataFrame(1, {arrow::Buffer::FromString("0123456789")}));
  auto bytes = Join(data);
  FrameDecoder decoder;
  ASSERT_OK(decoder.Consume(bytes));
  auto frame = decoder.Next();
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(frame->body->data(), bytes->data() + kFrameHeaderSize);
}

// Returns the message of the error a decoder reports for `bytes`, fed in one chunk.
std::string DecodeError(std::string bytes, FramingLimits limits = {}) {
  FrameDecoder decoder(limits);
  arrow::Status status = decoder.Consume(arrow::Buffer::FromString(std::move(bytes)));
  if (status.ok()) status = decoder.Finish();
  EXPECT_FALSE(status.ok());
  return status.message();
}

std::string Header(uint8_t kind, uint32_t metadata_length, uint64_t body_length) {
  uint8_t bytes[kFrameHeaderSize];
  WriteFrameHeader(FrameHeader{static_cast<FrameKind>(kind), 0, metadata_length,
                               static_cast<int64_t>(body_length)},
                   bytes);
  return std::string(reinterpret_cast<char*>(bytes), sizeof(bytes));
}

TEST(FrameCodec, BadMagicIsAClearError) {
  std::string bytes = Header(1, 0, 0);
  bytes[0] = 'X';
  EXPECT_NE(DecodeError(bytes).find("bad frame magic"), std::string::npos);
}

TEST(FrameCodec, UnknownKindIsAClearError) {
  EXPECT_NE(DecodeError(Header(9, 0, 0)).find("unknown frame kind 9"), std::string::npos);
}

TEST(FrameCodec, NonZeroReservedBytesAreAnError) {
  std::string bytes = Header(1, 0, 0);
  bytes[21] = 1;
  EXPECT_NE(DecodeError(bytes).find("reserved"), std::string::npos);
}

TEST(FrameCodec, LengthsOverTheLimitAreErrorsNotAllocations) {
  FramingLimits limits{/*max_metadata_bytes=*/100, /*max_body_bytes=*/1000};
  EXPECT_NE(DecodeError(Header(1, 101, 0), limits).find("over the limit of 100"),
            std::string::npos);
  EXPECT_NE(DecodeError(Header(2, 0, uint64_t{1} << 62), limits).find("over the limit of 1000"),
            std::string::npos);
}

TEST(FrameCodec, KindAndPartsMustAgree) {
  EXPECT_NE(DecodeError(Header(1, 0, 5)).find("control frame with a body"), std::string::npos);
  EXPECT_NE(DecodeError(Header(2, 5, 0)).find("data frame with 5 bytes of metadata"),
            std::string::npos);
}

TEST(FrameCodec, ControlFramesCarrySequenceZero) {
  std::string bytes = Header(1, 0, 0);
  bytes[8] = 7;  // the sequence field's low byte
  EXPECT_NE(DecodeError(bytes).find("control frame with sequence 7"), std::string::npos);
}

TEST(FrameCodec, TruncationSaysWhatWasMissing) {
  EXPECT_NE(DecodeError(Header(2, 0, 10) + "abc").find("expected 10 bytes, got 3 (7 missing)"),
            std::string::npos);
  EXPECT_NE(DecodeError(Header(1, 0, 0).substr(0, 20)).find("frame header"), std::string::npos);
}

// Random and mutated frames must give frames or clean errors, never a crash, a
// hang or an allocation past the limits (run under the sanitizers in CI).
TEST(FrameCodec, RandomAndMutatedInputGivesOnlyCleanErrors) {
  std::mt19937_64 random(42);
  FramingLimits limits{/*max_metadata_bytes=*/4096, /*max_body_bytes=*/1 << 16};
  ASSERT_OK_AND_ASSIGN(auto control, EncodeControlFrame(FinishMessage()));
  ASSERT_OK_AND_ASSIGN(auto data, EncodeDataFrame(9, {arrow::Buffer::FromString("xyz")}));
  const std::string valid = Join(control)->ToString() + Join(data)->ToString();
  int errors = 0;
  int frames = 0;
  for (int trial = 0; trial < 5000; ++trial) {
    std::string bytes = valid;
    if (trial % 2 == 0) {
      const int flips = 1 + static_cast<int>(random() % 4);
      for (int i = 0; i < flips; ++i) bytes[random() % bytes.size()] ^= 1 << (random() % 8);
    } else {
      bytes.resize(random() % 200);
      for (auto& byte : bytes) byte = static_cast<char>(random());
      if (bytes.size() >= 4 && trial % 4 == 1) bytes.replace(0, 4, "QVR1");
    }
    FrameDecoder decoder(limits);
    size_t offset = 0;
    arrow::Status status;
    while (status.ok() && offset < bytes.size()) {
      const size_t length = 1 + random() % 40;
      status = decoder.Consume(arrow::Buffer::FromString(bytes.substr(offset, length)));
      offset += length;
    }
    if (status.ok()) status = decoder.Finish();
    while (decoder.Next().has_value()) ++frames;
    if (!status.ok()) {
      ++errors;
      EXPECT_TRUE(status.IsIOError()) << status.ToString();
      EXPECT_FALSE(status.message().empty());
    }
  }
  EXPECT_GT(errors, 2000);  // most mutations must be caught
  EXPECT_GT(frames, 0);
}

}  // namespace
}  // namespace quiver::protocol
