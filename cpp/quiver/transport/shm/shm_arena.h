#pragma once

// The shared memory of the `shm` transport (docs/protocol.md, section 10): an
// arena is a memfd of fixed size mapped into the engine and one worker, and a
// RegionAllocator hands out byte ranges of it.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <arrow/result.h>

#include "quiver/io/unique_fd.h"

namespace quiver::transport::shm {

/// Every region starts at a multiple of this, so Arrow buffers read in place are aligned.
inline constexpr int64_t kRegionAlignment = 64;

/// \brief A memfd mapped into this process. Its size is sealed: neither side
/// can shrink it, so a mapped page never disappears under a reader (no SIGBUS).
class SharedArena {
 public:
  /// Creates an arena of `bytes`. `writable_here`: this process maps it
  /// read-write (else read-only). `seal_future_writes`: once mapped here, no
  /// other mapping of it may be writable (the worker can only read it).
  static arrow::Result<std::shared_ptr<SharedArena>> Create(const std::string& name, int64_t bytes,
                                                            bool writable_here,
                                                            bool seal_future_writes);

  ~SharedArena();
  SharedArena(const SharedArena&) = delete;
  SharedArena& operator=(const SharedArena&) = delete;

  /// Returns the first byte of the mapping.
  uint8_t* data() const { return data_; }
  /// Returns the size of the arena in bytes.
  int64_t size() const { return size_; }
  /// Returns the memfd, to pass to the worker (closed with CloseDescriptor).
  int fd() const { return fd_.get(); }
  /// Closes the memfd once the worker has it; the mapping stays.
  void CloseDescriptor() { fd_.Reset(); }

 private:
  SharedArena(io::UniqueFd fd, uint8_t* data, int64_t size)
      : fd_(std::move(fd)), data_(data), size_(size) {}

  io::UniqueFd fd_;
  uint8_t* data_;
  int64_t size_;
};

/// \brief First-fit allocation of aligned byte ranges of an arena, with
/// neighbouring free ranges merged. Not thread-safe: callers lock.
class RegionAllocator {
 public:
  explicit RegionAllocator(int64_t size);

  /// Returns the offset of a free range of `length` bytes (rounded up to the
  /// alignment), or nullopt when no free range is large enough.
  std::optional<int64_t> Allocate(int64_t length);

  /// Frees the range allocated at `offset`; false when none was.
  bool Free(int64_t offset);

  /// Returns the bytes allocated now.
  int64_t allocated_bytes() const { return allocated_bytes_; }

 private:
  std::map<int64_t, int64_t> free_;  // offset -> length
  std::map<int64_t, int64_t> used_;  // offset -> length
  int64_t allocated_bytes_ = 0;
};

/// Returns whether [offset, offset + length) lies inside [0, size), without overflow.
bool RegionFits(uint64_t offset, uint64_t length, int64_t size);

}  // namespace quiver::transport::shm
