// quiver_bench_framing: the uds framing (header + buffers to writev; bytes back to frames)
// and the Arrow IPC batch codec, for string batches of several sizes.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include <arrow/util/byte_size.h>
#include <benchmark/benchmark.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/frame_codec.h"
#include "sample_batch.h"

namespace quiver::bench {
namespace {

// Bytes of each socket read the frame decoder is fed in (one read's worth).
constexpr int64_t kReadChunkBytes = 64 << 10;

int64_t BatchBytes(const arrow::RecordBatch& batch) { return arrow::util::TotalBufferSize(batch); }

std::vector<std::shared_ptr<arrow::Buffer>> EncodedBody(const arrow::RecordBatch& batch) {
  return protocol::EncodeBatchStream(batch).ValueOrDie();
}

// Returns the buffers of `batch` as one Data frame, joined into one contiguous buffer.
std::shared_ptr<arrow::Buffer> FrameBytes(const arrow::RecordBatch& batch) {
  auto frame = protocol::EncodeDataFrame(7, EncodedBody(batch)).ValueOrDie();
  return arrow::ConcatenateBuffers(frame.buffers).ValueOrDie();
}

void Finish(benchmark::State& state, int64_t bytes_per_iteration) {
  state.SetBytesProcessed(state.iterations() * bytes_per_iteration);
  state.SetLabel(SizeLabel(state.range(0)));
}

// Batch -> IPC stream buffers (references to the batch's buffers, new headers).
void BM_BatchEncode(benchmark::State& state) {
  const auto batch = StringBatch(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(EncodedBody(*batch));
  Finish(state, BatchBytes(*batch));
}

// One contiguous IPC stream (as the transport receives it) -> batch (slices of it).
void BM_BatchDecode(benchmark::State& state) {
  const auto batch = StringBatch(state.range(0));
  const auto body = arrow::ConcatenateBuffers(EncodedBody(*batch)).ValueOrDie();
  for (auto _ : state) benchmark::DoNotOptimize(protocol::DecodeBatchStream(body).ValueOrDie());
  Finish(state, BatchBytes(*batch));
}

// IPC stream buffers -> a Data frame (a header in front; the buffers are not copied).
void BM_FrameEncode(benchmark::State& state) {
  const auto batch = StringBatch(state.range(0));
  const auto body = EncodedBody(*batch);
  uint64_t sequence = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(protocol::EncodeDataFrame(sequence++, body).ValueOrDie());
  }
  Finish(state, BatchBytes(*batch));
}

// Frame bytes fed in chunks of `range(1)` bytes -> a frame. A body inside one chunk is a
// slice of it; a body that spans chunks is assembled once.
void BM_FrameDecode(benchmark::State& state) {
  const auto bytes = FrameBytes(*StringBatch(state.range(0)));
  const int64_t chunk = state.range(1);
  for (auto _ : state) {
    protocol::FrameDecoder decoder;
    for (int64_t offset = 0; offset < bytes->size(); offset += chunk) {
      const int64_t length = std::min(chunk, bytes->size() - offset);
      if (!decoder.Consume(arrow::SliceBuffer(bytes, offset, length)).ok()) std::abort();
    }
    benchmark::DoNotOptimize(decoder.Next());
  }
  Finish(state, bytes->size());
  state.SetLabel(SizeLabel(state.range(0)) + " in " + SizeLabel(chunk) + " reads");
}

constexpr int64_t kSizes[] = {64 << 10, 1 << 20, 16 << 20};

void Sizes(benchmark::internal::Benchmark* benchmark) {
  for (int64_t size : kSizes) benchmark->Arg(size);
}

void SizesAndReads(benchmark::internal::Benchmark* benchmark) {
  for (int64_t size : kSizes) {
    benchmark->Args({size, kReadChunkBytes});
    benchmark->Args({size, size + (1 << 20)});  // the whole frame in one chunk
  }
}

BENCHMARK(BM_BatchEncode)->Apply(Sizes);
BENCHMARK(BM_BatchDecode)->Apply(Sizes);
BENCHMARK(BM_FrameEncode)->Apply(Sizes);
BENCHMARK(BM_FrameDecode)->Apply(SizesAndReads);

}  // namespace
}  // namespace quiver::bench
