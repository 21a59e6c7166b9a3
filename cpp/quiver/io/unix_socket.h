#pragma once

// Unix stream sockets: listening, accepting and connecting with timeouts, and
// writing and reading whole byte ranges. Sends use MSG_NOSIGNAL, so a peer that
// went away is an error Status, never a SIGPIPE.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include "quiver/io/deadline.h"
#include "quiver/io/unique_fd.h"

namespace quiver::io {

/// Creates a socket listening at `path` (which must not exist yet).
arrow::Result<UniqueFd> ListenUnixSocket(const std::string& path);

/// Waits until `deadline` for a connection; nullopt when none came in time.
arrow::Result<std::optional<UniqueFd>> AcceptUnixSocket(const UniqueFd& listener,
                                                        Deadline deadline);

/// Connects to the socket listening at `path`.
arrow::Result<UniqueFd> ConnectUnixSocket(const std::string& path);

/// Writes all bytes of `buffers`, in order, with as few system calls as the
/// kernel allows (scatter-gather: the buffers are not joined first).
arrow::Status SendAll(int fd, const std::vector<std::shared_ptr<arrow::Buffer>>& buffers,
                      Deadline deadline);

/// Reads exactly `length` bytes into `out`; returns fewer only when the peer
/// closed the connection (0 when it closed before the first byte).
arrow::Result<int64_t> ReceiveAll(int fd, uint8_t* out, int64_t length, Deadline deadline);

}  // namespace quiver::io
