#pragma once

#include <string>

#include <arrow/status.h>

namespace quiver::cli {

/// Returns what `quiver` prints for a failed run: the status message, then,
/// when the status carries a UdfErrorDetail, a line saying what kind of failure
/// it was and what to do about it.
std::string FailureMessage(const arrow::Status& status);

}  // namespace quiver::cli
