#pragma once

// The engine's copies of shm results (docs/protocol.md, section 10). The worker
// keeps its writable mapping of the output arena, so the engine copies every
// result out before it decodes and validates it: what it validated is memory
// only the engine can write. The memory of those copies is recycled, because
// fresh memory costs the kernel's zeroing of every page it faults in, every time
// (a result is megabytes).

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/result.h>

namespace quiver::transport::shm {

/// \brief Private memory for copies of results, recycled through a small pool.
///
/// A copy lies in an anonymous private mapping of its own, whose capacity is a
/// power of two so that results of similar sizes fit the same piece (pages past
/// what copies wrote are never faulted in). When the
/// last buffer over a copy is dropped, its piece returns to the pool, and the
/// next copy that fits takes it, pages already faulted in. The pool keeps at
/// most kMaxFreePieces pieces and kMaxFreeBytes bytes of them; the rest are
/// unmapped. A reused piece's bytes past the new copy's size are never part of
/// the returned buffer.
class ResultCopies : public std::enable_shared_from_this<ResultCopies> {
 public:
  static constexpr size_t kMaxFreePieces = 8;
  static constexpr int64_t kMaxFreeBytes = int64_t{128} << 20;

  /// Makes an empty pool.
  static std::shared_ptr<ResultCopies> Make();

  ~ResultCopies();
  ResultCopies(const ResultCopies&) = delete;
  ResultCopies& operator=(const ResultCopies&) = delete;

  /// Returns a copy of [data, data + size) in memory of its own; `size` > 0.
  arrow::Result<std::shared_ptr<arrow::Buffer>> Copy(const uint8_t* data, int64_t size);

  /// Returns how many pieces were mapped so far (a copy that found no free piece maps one).
  int64_t pieces_mapped() const;

  /// Returns how many pieces the pool holds, free for the next copies.
  int64_t free_pieces() const;

 private:
  class Piece;   // a private mapping, unmapped when dropped
  class Copied;  // a copy's buffer, which gives its piece back when dropped

  ResultCopies() = default;

  // Takes back a piece whose copy was dropped (while the pool holds little), else unmaps it.
  void Give(std::unique_ptr<Piece> piece);

  // Removes and returns the smallest free piece of at least `size` bytes, if any.
  std::unique_ptr<Piece> Take(int64_t size);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Piece>> free_;
  int64_t free_bytes_ = 0;
  int64_t pieces_mapped_ = 0;
};

}  // namespace quiver::transport::shm
