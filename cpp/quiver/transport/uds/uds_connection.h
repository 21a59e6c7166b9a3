#pragma once

#include <memory>
#include <string>

#include <arrow/result.h>

#include "quiver/io/unique_fd.h"
#include "quiver/protocol/frame_codec.h"
#include "quiver/transport/connection.h"

namespace quiver::transport::uds {

/// Makes a Connection over a connected Unix stream socket, using the framing of
/// docs/protocol.md section 4. Batches are written with one sendmsg from their
/// Arrow buffers; a received body lands in one 64-byte-aligned buffer that the
/// decoded batch slices.
std::unique_ptr<Connection> MakeUdsConnection(io::UniqueFd socket, std::string endpoint,
                                              protocol::FramingLimits limits = {});

}  // namespace quiver::transport::uds
