#pragma once

#include <string>

#include "quiver/v1/quiver.pb.h"

namespace quiver::sdk {

/// Returns this worker's Hello: protocol::kProtocolVersion, `worker_id`, `secret` (the
/// 64 hex characters as they are; empty in ManageResponse.worker), a runtime
/// description ("c++ quiver-sdk arrow 26.0.1") and the process id.
v1::Hello MakeHello(const std::string& worker_id, const std::string& secret);

}  // namespace quiver::sdk
