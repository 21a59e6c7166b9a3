#pragma once

// Reading a Unix stream socket whose peer may attach file descriptors
// (SCM_RIGHTS) to its bytes: the shm worker's result memfds.

#include <cstdint>
#include <deque>

#include <arrow/result.h>

#include "quiver/io/deadline.h"
#include "quiver/io/unique_fd.h"

namespace quiver::transport::shm {

/// Reads exactly `length` bytes into `out` as io::ReceiveAll does (fewer only
/// when the peer closed the connection), appending the descriptors that came
/// with them to `descriptors` in arrival order. They are received close-on-exec.
arrow::Result<int64_t> ReceiveWithDescriptors(int socket, uint8_t* out, int64_t length,
                                              io::Deadline deadline,
                                              std::deque<io::UniqueFd>* descriptors);

}  // namespace quiver::transport::shm
