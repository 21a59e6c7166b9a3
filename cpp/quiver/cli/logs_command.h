#pragma once

// `quiver logs DIR`: searches the files `quiver run --log-dir DIR` wrote and
// prints the matching lines readably, oldest first.

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace quiver::cli {

struct LogsArguments {
  std::string directory;
  std::string udf;     // empty: any
  std::string level;   // empty: any; else this level and more severe ones
  std::string worker;  // empty: any; else the worker's id or pid
  std::string grep;    // empty: any; else text the message contains
  bool json = false;   // print the kept JSON lines as they are
};

/// One kept line, as `quiver run --log-dir` writes it (docs/metrics.md, "Logs").
struct KeptLine {
  std::string time;
  std::vector<std::string> udfs;
  std::string worker;
  std::string pid;
  std::string batch;  // "" when unknown
  std::string level;
  std::string logger;
  std::string message;
  std::string raw;  // the JSON line itself
};

/// Reads one JSON line of a log file; nullopt when it is not one.
std::optional<KeptLine> ParseKeptLine(const std::string& line);

/// Returns whether `line` passes every filter of `arguments`.
bool Matches(const KeptLine& line, const LogsArguments& arguments);

/// Returns `line` as `quiver logs` prints it.
std::string FormatKeptLine(const KeptLine& line);

/// Adds the `logs` subcommand to `app`, bound to `arguments`.
CLI::App* AddLogsCommand(CLI::App& app, LogsArguments& arguments);

/// Runs `quiver logs`; returns the exit status: 0 when lines matched, 1 when
/// none did, 2 when DIR holds no log files.
int RunLogsCommand(const LogsArguments& arguments);

}  // namespace quiver::cli
