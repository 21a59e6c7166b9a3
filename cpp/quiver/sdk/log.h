#pragma once

// The worker's log: lines on stderr, "quiver-worker[ID] LEVEL message", which the
// engine keeps in a bounded log and quotes in errors about the worker.

#include <string>

namespace quiver::sdk {

/// How much the worker logs.
enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

/// Sets the worker id in the prefix of every line and the lowest level written.
void ConfigureLog(const std::string& worker_id, LogLevel level);

/// Writes one line to stderr when `level` is at or above the configured level.
void Log(LogLevel level, const std::string& message);

}  // namespace quiver::sdk
