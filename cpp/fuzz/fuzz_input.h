#pragma once

// Shared by the fuzz targets: turns libFuzzer's one byte string into the
// pieces a receiver sees (chunks of a stream, slices of a gRPC message), each
// in its own exactly sized heap allocation so that AddressSanitizer reports a
// read one byte past any of them.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <arrow/buffer.h>

namespace quiver::fuzz {

/// Returns a copy of `size` bytes at `data` in an allocation of exactly that size.
inline std::shared_ptr<arrow::Buffer> ExactCopy(const uint8_t* data, size_t size) {
  return arrow::Buffer::FromVector(std::vector<uint8_t>(data, data + size));
}

/// Cuts `size` bytes at `data` into chunks whose lengths follow from `seed`:
/// seed 0 gives one chunk, small seeds many small ones, large seeds fewer big ones.
inline std::vector<std::shared_ptr<arrow::Buffer>> SplitIntoChunks(const uint8_t* data, size_t size,
                                                                   uint8_t seed) {
  std::vector<std::shared_ptr<arrow::Buffer>> chunks;
  if (seed == 0) {
    chunks.push_back(ExactCopy(data, size));
    return chunks;
  }
  const size_t limit = size_t{1} + size_t{seed} * 4;
  // At most about 64 chunks: each is an allocation, and thousands of them per
  // input would slow the fuzzer down a hundredfold for no new boundary case.
  const size_t shortest = std::max<size_t>(1, size / 64);
  size_t offset = 0;
  for (size_t i = 0; offset < size; ++i) {
    const size_t wanted = std::max(shortest, 1 + (i * seed * 13 + seed) % limit);
    const size_t length = std::min(size - offset, wanted);
    chunks.push_back(ExactCopy(data + offset, length));
    offset += length;
  }
  return chunks;
}

}  // namespace quiver::fuzz
