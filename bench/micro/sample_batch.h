#pragma once

// Batches and byte buffers the microbenchmarks share.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>

#include <arrow/api.h>

namespace quiver::bench {

/// Length of each string, as in the end-to-end scenarios with 100-character strings.
inline constexpr int64_t kStringLength = 100;

/// Returns a batch of one string column `data` whose buffers hold about `bytes` bytes:
/// strings of kStringLength random letters (offsets included in the count).
inline std::shared_ptr<arrow::RecordBatch> StringBatch(int64_t bytes) {
  const int64_t rows = std::max<int64_t>(1, bytes / (kStringLength + 4));
  std::mt19937 random(56350);
  std::uniform_int_distribution<int> letter('a', 'z');
  std::string value(kStringLength, ' ');
  arrow::StringBuilder builder;
  if (!builder.Reserve(rows).ok() || !builder.ReserveData(rows * kStringLength).ok()) return {};
  for (int64_t row = 0; row < rows; ++row) {
    for (char& c : value) c = static_cast<char>(letter(random));
    builder.UnsafeAppend(value);
  }
  std::shared_ptr<arrow::Array> array = builder.Finish().ValueOrDie();
  auto schema = arrow::schema({arrow::field("data", arrow::utf8())});
  return arrow::RecordBatch::Make(schema, rows, {array});
}

/// Returns `size` bytes (touched, so their pages are resident) filled with `fill`.
inline std::shared_ptr<arrow::Buffer> FilledBuffer(int64_t size, uint8_t fill = 'x') {
  std::shared_ptr<arrow::Buffer> buffer = arrow::AllocateBuffer(size).ValueOrDie();
  std::memset(buffer->mutable_data(), fill, static_cast<size_t>(size));
  return buffer;
}

/// Returns 64 KiB, 1 MiB, 16 MiB as "64KiB", "1MiB", "16MiB".
inline std::string SizeLabel(int64_t bytes) {
  return bytes >= (1 << 20) ? std::to_string(bytes >> 20) + "MiB"
                            : std::to_string(bytes >> 10) + "KiB";
}

}  // namespace quiver::bench
