#pragma once

#include <string>
#include <string_view>

#include <arrow/status.h>

namespace quiver::cli {

/// Returns what `quiver` prints for a failed run: the status message, then,
/// when the status carries a UdfErrorDetail, a line saying what kind of failure
/// it was and what to do about it.
std::string FailureMessage(const arrow::Status& status);

/// Returns `text` with each byte that is not part of well-formed UTF-8 written
/// as `\xNN`, so that text from a worker (field names, messages) prints as valid
/// UTF-8. Valid text comes back unchanged.
std::string EscapeInvalidUtf8(std::string_view text);

}  // namespace quiver::cli
