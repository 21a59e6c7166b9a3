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

/// The sizes of a worker's two arenas.
struct ArenaSizes {
  /// Engine -> worker: the Arrow IPC streams of input batches.
  int64_t input_bytes = int64_t{256} << 20;
  /// Worker -> engine: the Arrow IPC streams of results.
  int64_t output_bytes = int64_t{256} << 20;
};

/// Returns the default sizes, or QUIVER_SHM_ARENA_BYTES (bytes, for both arenas) when set.
ArenaSizes DefaultArenaSizes();

/// \brief A Connection over the `shm` transport (docs/protocol.md, section 10):
/// the uds framing on the socket, batches in shared memory.
///
/// Until Setup, it is a plain uds connection (the worker's Hello arrives over it).
/// Afterwards, a batch goes into the input arena and its frame names the region;
/// a result the worker wrote into the output arena is checked against the
/// mapping, copied out (the worker still maps the arena writable: what the
/// engine validates must be a copy it alone holds), given back to the worker
/// with the next message, and only then decoded and validated. A batch that does
/// not fit the free space of an arena travels inline, as over uds.
class ShmConnection : public Connection {
 public:
  /// Creates both arenas, hands them to the worker (ShmSetup with the memfds
  /// as SCM_RIGHTS) and waits until `deadline` for its ShmReady.
  virtual arrow::Status Setup(ArenaSizes sizes, io::Deadline deadline) = 0;
};

/// Makes an ShmConnection over a connected Unix stream socket.
std::unique_ptr<ShmConnection> MakeShmConnection(io::UniqueFd socket, std::string endpoint,
                                                 protocol::FramingLimits limits = {});

}  // namespace quiver::transport::shm
