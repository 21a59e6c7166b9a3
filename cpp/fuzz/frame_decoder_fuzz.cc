// Fuzzes the uds framing decoder (protocol/frame_codec.h): the first byte picks
// how the rest is cut into chunks; every chunking must give the same frames or
// the same clean error, never a crash or an allocation past the limits.

#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_input.h"
#include "quiver/protocol/frame_codec.h"

namespace {

// Small limits, so that lengths near them are reachable by the fuzzer.
constexpr quiver::protocol::FramingLimits kLimits{4096, 1 << 16};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  using quiver::protocol::FrameDecoder;
  if (size > quiver::protocol::kFrameHeaderSize) {
    (void)quiver::protocol::ReadFrameHeader(data + 1, kLimits);
  }
  FrameDecoder decoder(kLimits);
  for (const auto& chunk : quiver::fuzz::SplitIntoChunks(data + 1, size - 1, data[0])) {
    if (!decoder.Consume(chunk).ok()) break;
    while (auto frame = decoder.Next()) {
      // A frame's parts are read by the receiver: touch every byte.
      uint8_t sum = 0;
      for (int64_t i = 0; i < frame->metadata->size(); ++i) sum ^= frame->metadata->data()[i];
      for (int64_t i = 0; i < frame->body->size(); ++i) sum ^= frame->body->data()[i];
      volatile uint8_t sink = sum;
      (void)sink;
    }
  }
  (void)decoder.Finish();
  return 0;
}
