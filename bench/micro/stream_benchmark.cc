// quiver_bench_stream: reading a ChunkedInputStream within one chunk (slices, no copy)
// and across chunks (each read concatenates the bytes it returns, once).

#include <algorithm>
#include <cstdint>
#include <memory>

#include <benchmark/benchmark.h>

#include "quiver/io/chunked_input_stream.h"
#include "sample_batch.h"

namespace quiver::bench {
namespace {

// Bytes each stream carries: larger than the caches.
constexpr int64_t kStreamBytes = int64_t{64} << 20;

// Returns a finished stream over `source` appended as chunks of `chunk_bytes` (slices).
std::shared_ptr<io::ChunkedInputStream> StreamOf(const std::shared_ptr<arrow::Buffer>& source,
                                                 int64_t chunk_bytes) {
  auto stream = std::make_shared<io::ChunkedInputStream>();
  for (int64_t offset = 0; offset < source->size(); offset += chunk_bytes) {
    const int64_t length = std::min(chunk_bytes, source->size() - offset);
    if (!stream->Append(arrow::SliceBuffer(source, offset, length)).ok()) return nullptr;
  }
  stream->Finish();
  return stream;
}

// Reads `stream` to its end in reads of `read_bytes`; returns the bytes read.
int64_t Drain(io::ChunkedInputStream* stream, int64_t read_bytes) {
  int64_t total = 0;
  while (true) {
    std::shared_ptr<arrow::Buffer> buffer = stream->Read(read_bytes).ValueOrDie();
    if (buffer->size() == 0) return total;
    benchmark::DoNotOptimize(buffer->data());
    total += buffer->size();
  }
}

// Reads the whole stream per iteration; the stream is built outside the timing.
void ReadStream(benchmark::State& state, int64_t chunk_bytes, int64_t read_bytes) {
  const auto source = FilledBuffer(kStreamBytes);
  for (auto _ : state) {
    state.PauseTiming();
    auto stream = StreamOf(source, chunk_bytes);
    state.ResumeTiming();
    benchmark::DoNotOptimize(Drain(stream.get(), read_bytes));
  }
  state.SetBytesProcessed(state.iterations() * kStreamBytes);
  state.SetItemsProcessed(state.iterations() * (kStreamBytes / read_bytes));  // reads
  state.SetLabel("chunk " + SizeLabel(chunk_bytes) + ", read " + SizeLabel(read_bytes));
}

// Reads inside one 64 MiB chunk: every read returns a slice of it.
void BM_ReadWithinChunk(benchmark::State& state) {
  ReadStream(state, kStreamBytes, state.range(0));
}
BENCHMARK(BM_ReadWithinChunk)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);

// Reads larger than the chunks: every read spans chunks and copies what it returns.
void BM_ReadAcrossChunks(benchmark::State& state) {
  ReadStream(state, state.range(0), state.range(1));
}
BENCHMARK(BM_ReadAcrossChunks)
    ->Args({4 << 10, 64 << 10})
    ->Args({64 << 10, 1 << 20})
    ->Args({1 << 20, 4 << 20});

}  // namespace
}  // namespace quiver::bench
