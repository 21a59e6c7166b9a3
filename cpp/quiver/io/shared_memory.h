#pragma once

// Shared memory as both ends of the `shm` transport use it (docs/protocol.md,
// section 10): a memfd mapped into this process, the first-fit allocation of
// aligned regions of it, the bounds check of a region a peer names, and
// reading bytes that carry descriptors (SCM_RIGHTS). The engine's transport
// and the worker SDK share these; neither depends on the other.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include "quiver/io/deadline.h"
#include "quiver/io/unique_fd.h"

namespace quiver::io {

/// Every region starts at a multiple of this, so Arrow buffers read in place are aligned.
inline constexpr int64_t kRegionAlignment = 64;

/// A batch's Arrow IPC stream shorter than this travels inline, on the socket: for small
/// batches the socket is the faster way (measured: docs/decisions.md, "shm by default").
inline constexpr int64_t kInlineBelowBytes = int64_t{64} << 10;

/// \brief A mapping of the first `size` bytes of a memfd, unmapped when dropped.
class MemoryMapping {
 public:
  /// Maps `size` bytes of `fd` (MAP_SHARED; read-write when `writable`), after
  /// checking that the file really has that many: a peer that announces more
  /// than it gave would otherwise make a read past the file's end a SIGBUS.
  static arrow::Result<std::unique_ptr<MemoryMapping>> Map(int fd, int64_t size, bool writable);

  ~MemoryMapping();
  MemoryMapping(const MemoryMapping&) = delete;
  MemoryMapping& operator=(const MemoryMapping&) = delete;

  uint8_t* data() const { return data_; }
  int64_t size() const { return size_; }

 private:
  MemoryMapping(uint8_t* data, int64_t size) : data_(data), size_(size) {}

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

/// Reads exactly `length` bytes into `out`, blocking, like ReceiveAll without
/// a deadline, and keeps the descriptors that arrive with them (SCM_RIGHTS) in
/// `descriptors`. Returns fewer bytes only when the peer closed the connection.
arrow::Result<int64_t> ReceiveWithDescriptors(int socket, uint8_t* out, int64_t length,
                                              std::vector<UniqueFd>* descriptors);

/// Sends `parts` (one small frame) with `descriptors` attached as SCM_RIGHTS to
/// the first byte, then any bytes sendmsg left; waits for room until `deadline`.
arrow::Status SendWithDescriptors(int socket,
                                  const std::vector<std::shared_ptr<arrow::Buffer>>& parts,
                                  const std::vector<int>& descriptors, Deadline deadline);

}  // namespace quiver::io
