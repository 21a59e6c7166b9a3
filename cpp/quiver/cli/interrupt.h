#pragma once

// Ctrl-C during `quiver run`: the signal handler only records the signal; the
// run loop sees it between batches, removes the temporary output and exits
// 128 + signal. A run blocked inside a batch cannot look, so a watchdog thread
// does the same cleanup itself when the run has not stopped within a grace
// period, or at once on a second Ctrl-C.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace quiver::cli {

/// Installs handlers for SIGINT and SIGTERM that record the signal and nothing else.
void InstallInterruptHandlers();

/// Returns the signal that asked quiver to stop, or 0 when none arrived.
int InterruptSignal();

/// \brief Ends the process when it does not stop in time after an interrupt.
///
/// Removes the registered file and directory, kills the process's children (the workers),
/// writes "quiver: interrupted" to stderr and calls _exit(128 + signal).
/// Stopped (and joined) by its destructor.
class InterruptWatchdog {
 public:
  explicit InterruptWatchdog(std::chrono::milliseconds grace);
  ~InterruptWatchdog();

  InterruptWatchdog(const InterruptWatchdog&) = delete;
  InterruptWatchdog& operator=(const InterruptWatchdog&) = delete;

  /// Sets the file to remove before ending the process ("" for none).
  void SetCleanupPath(std::string path);

  /// Adds a directory to remove with its contents before ending the process
  /// (a dispatcher's private socket directory; one per worker runtime).
  void AddCleanupDirectory(std::string path);

 private:
  void Watch();

  std::chrono::milliseconds grace_;
  std::mutex mutex_;
  std::condition_variable stop_requested_;
  bool stop_ = false;
  std::string cleanup_path_;
  std::vector<std::string> cleanup_directories_;
  std::thread thread_;
};

}  // namespace quiver::cli
