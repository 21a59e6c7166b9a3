#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <arrow/status.h>

#include "quiver/io/deadline.h"
#include "quiver/io/unique_fd.h"
#include "quiver/protocol/frame_codec.h"
#include "quiver/transport/connection.h"

namespace quiver::transport::shm {

/// The size of a worker's input arena (engine -> worker: the Arrow IPC streams
/// of input batches). Results need none: each comes in a memfd of its own.
struct ArenaSizes {
  int64_t input_bytes = int64_t{256} << 20;
};

/// Returns the default sizes, or QUIVER_SHM_ARENA_BYTES (bytes) when set.
ArenaSizes DefaultArenaSizes();

/// \brief A Connection over the `shm` transport (docs/protocol.md, section 10):
/// the uds framing on the socket, batches in shared memory.
///
/// Until Setup, it is a plain uds connection (the worker's Hello arrives over it).
/// Afterwards, a batch goes into the input arena and its frame names the region;
/// a result arrives in a memfd of its own, which the engine seals against any
/// change before it reads a byte (result_memfd.h), then validates and decodes.
/// A batch that does not fit the free space of the arena travels inline, as
/// over uds; so may any result.
class ShmConnection : public Connection {
 public:
  /// Creates the input arena, hands it to the worker (ShmSetup with the memfd
  /// as SCM_RIGHTS) and waits until `deadline` for its ShmReady.
  virtual arrow::Status Setup(ArenaSizes sizes, io::Deadline deadline) = 0;
};

/// Makes an ShmConnection over a connected Unix stream socket.
std::unique_ptr<ShmConnection> MakeShmConnection(io::UniqueFd socket, std::string endpoint,
                                                 protocol::FramingLimits limits = {});

}  // namespace quiver::transport::shm
