#pragma once

// Notices the reasons a worker must stop that come from outside the protocol:
// SIGTERM and SIGINT (the engine stopping the worker, Ctrl-C in its terminal),
// and, for servers, the death of the process that started the worker.

#include <functional>
#include <memory>
#include <string>

#include <arrow/result.h>

namespace quiver::sdk {

/// \brief Watches for SIGTERM/SIGINT and, optionally, a new parent process.
///
/// The signal handlers only write a byte to a pipe; a thread of the watcher
/// reads it and calls `on_stop` (once), so `on_stop` may do anything.
class StopWatcher {
 public:
  /// Called with the reason the worker should stop, on the watcher's thread.
  using Callback = std::function<void(const std::string& reason)>;

  /// Installs the handlers and starts watching. With `watch_parent`, checks
  /// every 250 ms that the parent process is still the one it started with.
  static arrow::Result<std::unique_ptr<StopWatcher>> Start(bool watch_parent, Callback on_stop);

  /// Stops watching (the handlers stay: a later signal is then ignored).
  virtual ~StopWatcher() = default;
};

}  // namespace quiver::sdk
