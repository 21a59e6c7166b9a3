#pragma once

// A memory pool that keeps the large blocks it is given back and hands them out
// again. The engine's file readers allocate a page buffer and the decoded
// columns of every batch — megabytes each — and free them on another thread
// once a worker has answered. The allocator under Arrow's default pool returns
// such blocks to the kernel soon after they are freed, so the next batch's
// blocks are fresh memory, and the kernel zeroes every page of them as it is
// first written: on a run over gigabytes of strings, a cost of the order of a
// copy of the input. Kept blocks come back with their pages already in place.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <arrow/memory_pool.h>
#include <arrow/status.h>

namespace quiver::io {

/// \brief An arrow::MemoryPool over another one that recycles large blocks.
///
/// A request of at least `min_block_bytes` gets a block of the next power of
/// two, taken from the blocks freed earlier when one of that size is kept, else
/// from the backing pool. A freed block is kept while the kept blocks stay
/// within `max_kept_bytes`; beyond that it goes back to the backing pool.
/// Smaller requests, and those with an alignment over Arrow's default, go to
/// the backing pool as they are. A reallocation within one block's size keeps
/// the block (a builder growing its buffer copies nothing until it outgrows a
/// power of two). Thread-safe: blocks are often freed on another thread than
/// the one that took them.
class RecyclingMemoryPool : public arrow::MemoryPool {
 public:
  static constexpr int64_t kDefaultMinBlockBytes = int64_t{64} << 10;
  static constexpr int64_t kDefaultMaxKeptBytes = int64_t{64} << 20;

  explicit RecyclingMemoryPool(arrow::MemoryPool* backing,
                               int64_t min_block_bytes = kDefaultMinBlockBytes,
                               int64_t max_kept_bytes = kDefaultMaxKeptBytes);
  ~RecyclingMemoryPool() override;
  RecyclingMemoryPool(const RecyclingMemoryPool&) = delete;
  RecyclingMemoryPool& operator=(const RecyclingMemoryPool&) = delete;

  using arrow::MemoryPool::Allocate;  // the overloads of Arrow's default alignment
  using arrow::MemoryPool::Free;
  using arrow::MemoryPool::Reallocate;
  arrow::Status Allocate(int64_t size, int64_t alignment, uint8_t** out) override;
  arrow::Status Reallocate(int64_t old_size, int64_t new_size, int64_t alignment,
                           uint8_t** ptr) override;
  void Free(uint8_t* buffer, int64_t size, int64_t alignment) override;
  /// Returns every kept block to the backing pool.
  void ReleaseUnused() override;

  /// Bytes handed out and not freed (kept blocks are not counted).
  int64_t bytes_allocated() const override;
  int64_t max_memory() const override;
  int64_t total_bytes_allocated() const override;
  int64_t num_allocations() const override;
  std::string backend_name() const override;

  /// Bytes of the blocks kept for reuse.
  int64_t kept_bytes() const;
  /// Requests served by a kept block.
  int64_t reused_blocks() const;

 private:
  // The size of the block serving a request of `size` bytes, or 0 when the
  // request goes to the backing pool as it is.
  int64_t BlockBytes(int64_t size, int64_t alignment) const;
  arrow::Status TakeBlock(int64_t block_bytes, uint8_t** out);
  void GiveBack(uint8_t* block, int64_t block_bytes);

  arrow::MemoryPool* const backing_;
  const int64_t min_block_bytes_;
  const int64_t max_kept_bytes_;
  mutable std::mutex mutex_;
  std::map<int64_t, std::vector<uint8_t*>> kept_;  // by block size
  int64_t kept_bytes_ = 0;
  int64_t allocated_ = 0;
  int64_t max_allocated_ = 0;
  int64_t total_allocated_ = 0;
  int64_t allocations_ = 0;
  int64_t reused_ = 0;
};

/// The pool the engine's readers decode into: one per process, over Arrow's
/// default pool.
arrow::MemoryPool* ReaderMemoryPool();

}  // namespace quiver::io
