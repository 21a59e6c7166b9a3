#include "quiver/cli/log_dir_option.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "quiver/cli/run_command.h"
#include "quiver/cli/usage_error.h"

namespace quiver::cli {

void AddLogDirOption(CLI::App* run, RunOptions* options) {
  run->add_option("--log-dir", options->log_dir,
                  "Keep every line the workers write (print, logging, stderr, native code) in "
                  "DIR, one JSON-lines file per worker with its UDFs, batch, level and time; "
                  "search them with 'quiver logs DIR'");
  run->add_option("--progress", options->progress,
                  "auto: a progress line (rows, rows/s, MB/s, ETA) on a terminal; json: one "
                  "JSON object per update on stderr (rows, bytes, rows/s, each worker's state, "
                  "batch and RSS) and a last one with \"final\": true; live: the line and a "
                  "line per worker (idle, or computing batch N for how long; RSS), redrawn on a "
                  "terminal; off: none")
      ->check(CLI::IsMember({"auto", "json", "live", "off"}))
      ->capture_default_str();
}

arrow::Status PrepareLogDir(const std::string& directory) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (fs::exists(directory, error) && !fs::is_directory(directory, error)) {
    return UsageError("--log-dir " + directory + " is a file, not a directory; name a directory");
  }
  if (!fs::is_directory(directory, error) && !fs::create_directories(directory, error)) {
    return UsageError("--log-dir " + directory + " cannot be created (" + error.message() +
                      "); name a directory you may write");
  }
  // A probe file, since access() says yes to root on a read-only file system.
  const std::string probe = directory + "/.quiver-log-probe-" + std::to_string(::getpid());
  std::FILE* file = std::fopen(probe.c_str(), "w");
  if (file == nullptr) {
    return UsageError("--log-dir " + directory + " cannot be written (" + std::strerror(errno) +
                      "); name a directory you may write");
  }
  std::fclose(file);
  ::unlink(probe.c_str());
  return arrow::Status::OK();
}

}  // namespace quiver::cli
