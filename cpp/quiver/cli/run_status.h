#pragma once

// What a running `quiver run` publishes for `quiver top` (top_command.h): its
// progress, each worker's state and the slowest UDF, rewritten twice a second
// in the run's private directory (mode 0700, this user's only) as
// status.json, for scripts, and status.txt, the view drawn for people.

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "quiver/cli/progress.h"
#include "quiver/worker/worker_activity.h"

namespace quiver::cli {

/// The file names in a run's private directory.
inline constexpr char kRunStatusJson[] = "status.json";
inline constexpr char kRunStatusView[] = "status.txt";

/// What identifies a run in `quiver top`.
struct RunIdentity {
  pid_t pid = 0;
  std::string input;
  std::vector<std::string> udfs;
};

/// Returns the worker that has computed its current batch the longest, if any
/// computes one: its UDFs are the run's slowest now.
std::optional<worker::WorkerState> SlowestWorker(const std::vector<worker::WorkerState>& workers);

/// Formats status.json: the run's pid, input and UDFs, the `--progress json`
/// fields and "slowest" (the worker of SlowestWorker, or null).
std::string FormatRunStatusJson(const RunIdentity& run, const ProgressFigures& figures, bool final);

/// Formats status.txt: a header naming the run, the progress line, the slowest
/// UDF and one line per worker, each ending in a newline.
std::string FormatRunStatusView(const RunIdentity& run, const ProgressFigures& figures);

/// Writes `text` to `directory`/`name` atomically (a temporary file renamed
/// over it), mode 0600; false when it cannot.
bool WriteFileAtomically(const std::string& directory, const char* name, const std::string& text);

/// \brief Rewrites a run's status files every 500 ms on a thread of its own,
/// from `figures` (called on that thread: it must be thread-safe).
class RunStatusPublisher {
 public:
  RunStatusPublisher(std::string directory, RunIdentity run,
                     std::function<ProgressFigures()> figures);
  /// Writes the last status ("final": true) and stops.
  ~RunStatusPublisher();
  RunStatusPublisher(const RunStatusPublisher&) = delete;
  RunStatusPublisher& operator=(const RunStatusPublisher&) = delete;

 private:
  void Publish(bool final);
  void Loop();

  const std::string directory_;
  const RunIdentity run_;
  const std::function<ProgressFigures()> figures_;
  std::mutex mutex_;
  std::condition_variable stop_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace quiver::cli
