#pragma once

// Usage errors are mistakes in the command line itself (a --udf spec that does
// not parse, an unknown format name); quiver exits 2 for them, as for the ones
// CLI11 finds, and 1 for everything that goes wrong while running.

#include <string>

#include <arrow/status.h>

namespace quiver::cli {

/// Returns an Invalid status marked as a usage error.
arrow::Status UsageError(std::string message);

/// Returns whether `status` was made by UsageError.
bool IsUsageError(const arrow::Status& status);

}  // namespace quiver::cli
