#pragma once

#include <chrono>

namespace quiver::io {

/// The moment a blocking operation gives up.
using Deadline = std::chrono::steady_clock::time_point;

/// A deadline that never comes.
inline constexpr Deadline kNoDeadline = Deadline::max();

/// Returns the deadline `timeout` from now.
inline Deadline DeadlineIn(std::chrono::milliseconds timeout) {
  return std::chrono::steady_clock::now() + timeout;
}

}  // namespace quiver::io
