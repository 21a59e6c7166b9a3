#pragma once

// The worker's side of the `shm` transport's shared memory (docs/protocol.md,
// section 10): the two arenas the engine hands over after Hello, input batches
// read in place from the input arena, results written into regions of the
// output arena that stay the engine's until it releases them.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/result.h>

#include "quiver/io/shared_memory.h"
#include "quiver/v1/quiver.pb.h"

namespace quiver::sdk {

/// \brief The mapped arenas of one connection. Used by the serving thread only.
class ShmChannel {
 public:
  /// Reads the engine's first frame after Hello from `socket`: ShmSetup with
  /// the two memfds (input, output) attached; maps both (the input arena
  /// read-only, the output arena read-write) and closes the descriptors. The
  /// caller answers ShmReady. Fails with what was wrong.
  static arrow::Result<std::unique_ptr<ShmChannel>> Open(int socket);

  /// Returns the input batch `data` names, read in place: valid until the
  /// worker answered that batch. Fails (a ProtocolError's text) when the region
  /// is empty or lies outside the input arena.
  arrow::Result<std::shared_ptr<arrow::Buffer>> Input(const v1::ShmData& data) const;

  /// Copies `body` into a free region of the output arena and returns it, or
  /// nullopt when it is small (io::kInlineBelowBytes) or no free region is large
  /// enough: the result then goes inline.
  std::optional<v1::ShmRegion> Write(const std::vector<std::shared_ptr<arrow::Buffer>>& body);

  /// Gives back the regions the engine released; a region the worker did not
  /// hand over is the engine's mistake: logged and ignored.
  void Release(const v1::ShmRelease& release);

 private:
  ShmChannel(std::unique_ptr<io::MemoryMapping> input, std::unique_ptr<io::MemoryMapping> output)
      : input_(std::move(input)), output_(std::move(output)), allocator_(output_->size()) {}

  std::unique_ptr<io::MemoryMapping> input_;
  std::unique_ptr<io::MemoryMapping> output_;
  io::RegionAllocator allocator_;  // of the output arena
};

}  // namespace quiver::sdk
