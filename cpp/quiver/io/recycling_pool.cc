#include "quiver/io/recycling_pool.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace quiver::io {

RecyclingMemoryPool::RecyclingMemoryPool(arrow::MemoryPool* backing, int64_t min_block_bytes,
                                         int64_t max_kept_bytes)
    : backing_(backing),
      min_block_bytes_(std::max<int64_t>(1, min_block_bytes)),
      max_kept_bytes_(std::max<int64_t>(0, max_kept_bytes)) {}

RecyclingMemoryPool::~RecyclingMemoryPool() { ReleaseUnused(); }

int64_t RecyclingMemoryPool::BlockBytes(int64_t size, int64_t alignment) const {
  if (size < min_block_bytes_ || alignment > arrow::kDefaultBufferAlignment) return 0;
  // Blocks larger than half of what may be kept would be kept alone: not worth it.
  if (size > max_kept_bytes_ / 2) return 0;
  return static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(size)));
}

arrow::Status RecyclingMemoryPool::TakeBlock(int64_t block_bytes, uint8_t** out) {
  {
    std::lock_guard lock(mutex_);
    auto kept = kept_.find(block_bytes);
    if (kept != kept_.end() && !kept->second.empty()) {
      *out = kept->second.back();
      kept->second.pop_back();
      kept_bytes_ -= block_bytes;
      ++reused_;
      return arrow::Status::OK();
    }
  }
  return backing_->Allocate(block_bytes, arrow::kDefaultBufferAlignment, out);
}

void RecyclingMemoryPool::GiveBack(uint8_t* block, int64_t block_bytes) {
  {
    std::lock_guard lock(mutex_);
    if (kept_bytes_ + block_bytes <= max_kept_bytes_) {
      kept_[block_bytes].push_back(block);
      kept_bytes_ += block_bytes;
      return;
    }
  }
  backing_->Free(block, block_bytes, arrow::kDefaultBufferAlignment);
}

arrow::Status RecyclingMemoryPool::Allocate(int64_t size, int64_t alignment, uint8_t** out) {
  const int64_t block_bytes = BlockBytes(size, alignment);
  if (block_bytes == 0) {
    ARROW_RETURN_NOT_OK(backing_->Allocate(size, alignment, out));
  } else {
    ARROW_RETURN_NOT_OK(TakeBlock(block_bytes, out));
  }
  std::lock_guard lock(mutex_);
  allocated_ += size;
  max_allocated_ = std::max(max_allocated_, allocated_);
  total_allocated_ += size;
  ++allocations_;
  return arrow::Status::OK();
}

arrow::Status RecyclingMemoryPool::Reallocate(int64_t old_size, int64_t new_size, int64_t alignment,
                                              uint8_t** ptr) {
  const int64_t old_block = BlockBytes(old_size, alignment);
  const int64_t new_block = BlockBytes(new_size, alignment);
  if (old_block == 0 && new_block == 0) {
    ARROW_RETURN_NOT_OK(backing_->Reallocate(old_size, new_size, alignment, ptr));
  } else if (old_block != new_block) {
    uint8_t* moved = nullptr;
    if (new_block == 0) {
      ARROW_RETURN_NOT_OK(backing_->Allocate(new_size, alignment, &moved));
    } else {
      ARROW_RETURN_NOT_OK(TakeBlock(new_block, &moved));
    }
    std::memcpy(moved, *ptr, static_cast<size_t>(std::min(old_size, new_size)));
    if (old_block == 0) {
      backing_->Free(*ptr, old_size, alignment);
    } else {
      GiveBack(*ptr, old_block);
    }
    *ptr = moved;
  }
  // Same block size: the block already holds new_size bytes.
  std::lock_guard lock(mutex_);
  allocated_ += new_size - old_size;
  max_allocated_ = std::max(max_allocated_, allocated_);
  total_allocated_ += std::max<int64_t>(0, new_size - old_size);
  return arrow::Status::OK();
}

void RecyclingMemoryPool::Free(uint8_t* buffer, int64_t size, int64_t alignment) {
  const int64_t block_bytes = BlockBytes(size, alignment);
  if (block_bytes == 0) {
    backing_->Free(buffer, size, alignment);
  } else {
    GiveBack(buffer, block_bytes);
  }
  std::lock_guard lock(mutex_);
  allocated_ -= size;
}

void RecyclingMemoryPool::ReleaseUnused() {
  std::map<int64_t, std::vector<uint8_t*>> kept;
  {
    std::lock_guard lock(mutex_);
    kept.swap(kept_);
    kept_bytes_ = 0;
  }
  for (const auto& [block_bytes, blocks] : kept) {
    for (uint8_t* block : blocks) {
      backing_->Free(block, block_bytes, arrow::kDefaultBufferAlignment);
    }
  }
}

int64_t RecyclingMemoryPool::bytes_allocated() const {
  std::lock_guard lock(mutex_);
  return allocated_;
}

int64_t RecyclingMemoryPool::max_memory() const {
  std::lock_guard lock(mutex_);
  return max_allocated_;
}

int64_t RecyclingMemoryPool::total_bytes_allocated() const {
  std::lock_guard lock(mutex_);
  return total_allocated_;
}

int64_t RecyclingMemoryPool::num_allocations() const {
  std::lock_guard lock(mutex_);
  return allocations_;
}

std::string RecyclingMemoryPool::backend_name() const {
  return "recycling(" + backing_->backend_name() + ")";
}

int64_t RecyclingMemoryPool::kept_bytes() const {
  std::lock_guard lock(mutex_);
  return kept_bytes_;
}

int64_t RecyclingMemoryPool::reused_blocks() const {
  std::lock_guard lock(mutex_);
  return reused_;
}

arrow::MemoryPool* ReaderMemoryPool() {
  // Never destroyed: batches decoded into it may outlive static destruction.
  static auto* pool = new RecyclingMemoryPool(arrow::default_memory_pool());
  return pool;
}

}  // namespace quiver::io
