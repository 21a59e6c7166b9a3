#pragma once

// A result too large for one message is refused by the worker with its size,
// before any transport cuts it off (docs/protocol.md, section 4, "A result too
// large"): over gRPC the engine would only see a failed call.

#include <cstdint>
#include <string>

#include <arrow/record_batch.h>
#include <arrow/status.h>

#include "quiver/protocol/batch_codec.h"

namespace quiver::sdk {

/// Returns OK when `result` fits one message (`limit` bytes as an Arrow IPC
/// message), else a WorkerError naming `udf_name`, the result's columns, its
/// size, the limit and what to do.
arrow::Status CheckResultSize(const arrow::RecordBatch& result, const std::string& udf_name,
                              int64_t limit = protocol::kMaxResultBytes);

}  // namespace quiver::sdk
