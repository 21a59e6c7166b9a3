#pragma once

// A result of the `shm` transport arrives in a memfd of its own
// (docs/protocol.md, section 10). Before a byte of it is read, the engine seals
// the memfd against writing, shrinking and growing: the kernel refuses
// F_SEAL_WRITE while any writable shared mapping of it exists, so once the seal
// holds no process (the worker, its children) can change what the engine then
// validates and reads.

#include <cstdint>
#include <memory>

#include <arrow/buffer.h>
#include <arrow/result.h>

#include "quiver/io/unique_fd.h"

namespace quiver::transport::shm {

/// Results up to this size are copied out of their memfd; larger ones are
/// mapped and read in place (a mapping per result would otherwise let many
/// small results use up the process's mappings).
inline constexpr int64_t kCopyResultsUpTo = int64_t{1} << 20;

/// Seals `memfd` and returns the bytes [offset, offset + length) of it, copied
/// or mapped read-only. The error says why the memfd cannot be trusted ("is
/// still mapped writable by the worker", "is not a memfd", ...) or why the
/// region does not fit, phrased to follow "the worker's result memfd ...".
arrow::Result<std::shared_ptr<arrow::Buffer>> TakeSealedResult(io::UniqueFd memfd, uint64_t offset,
                                                               uint64_t length);

}  // namespace quiver::transport::shm
