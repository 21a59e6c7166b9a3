#pragma once

// The shared memory of the `shm` transport (docs/protocol.md, section 10): an
// arena is a memfd of fixed size mapped into the engine and one worker, and a
// RegionAllocator (io/shared_memory.h, shared with the worker SDK) hands out
// byte ranges of it.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include <arrow/result.h>

#include "quiver/io/shared_memory.h"
#include "quiver/io/unique_fd.h"

namespace quiver::transport::shm {

using io::kRegionAlignment;

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

// The region allocation and bounds check both ends share (io/shared_memory.h).
using io::RegionAllocator;
using io::RegionFits;

}  // namespace quiver::transport::shm
