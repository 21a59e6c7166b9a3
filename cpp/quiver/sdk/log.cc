#include "quiver/sdk/log.h"

#include <cstdio>
#include <mutex>

namespace quiver::sdk {
namespace {

struct LogConfig {
  std::mutex mutex;
  std::string worker_id = "?";
  LogLevel level = LogLevel::kInfo;
};

LogConfig& Config() {
  static LogConfig config;
  return config;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARNING";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?";
}

}  // namespace

void ConfigureLog(const std::string& worker_id, LogLevel level) {
  LogConfig& config = Config();
  std::lock_guard<std::mutex> lock(config.mutex);
  config.worker_id = worker_id;
  config.level = level;
}

void Log(LogLevel level, const std::string& message) {
  LogConfig& config = Config();
  std::lock_guard<std::mutex> lock(config.mutex);
  if (level < config.level) return;
  // One write per line, so that lines of several threads do not interleave.
  const std::string line =
      "quiver-worker[" + config.worker_id + "] " + LevelName(level) + " " + message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace quiver::sdk
