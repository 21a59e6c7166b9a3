#pragma once

// A free TCP port on the loopback interface, for a worker the engine (or the
// conformance kit) starts on a port it chooses.

#include <arrow/result.h>

namespace quiver::io {

/// Returns a TCP port on the loopback interface that was free a moment ago. The
/// worker binds it right after; a port taken in between makes its start fail
/// with a clear error, never a connection to the wrong process (the engine
/// checks the pid the worker reports).
arrow::Result<int> FreeLoopbackPort();

}  // namespace quiver::io
