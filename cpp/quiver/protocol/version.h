#pragma once

#include <cstdint>

namespace quiver::protocol {

/// The quiver.v1 protocol version this engine speaks: sent in Init, required in
/// a worker's Hello (docs/protocol.md, sections 1 and 6).
inline constexpr uint32_t kProtocolVersion = 1;

}  // namespace quiver::protocol
