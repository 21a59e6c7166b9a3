#pragma once

// `quiver top [RUN]`: a live view of the runs of this user going on in other
// terminals, read from the status each `quiver run` publishes in its private
// directory (run_status.h): per worker idle or computing batch N for how long,
// its memory, rows/s and the slowest UDF; redrawn until the runs end.

#include <string>
#include <vector>

#include <sys/types.h>

#include <CLI/CLI.hpp>

namespace quiver::cli {

struct TopArguments {
  std::string run;        // empty: every run; else its pid (or its directory)
  bool once = false;      // draw once and exit
  bool json = false;      // print the status JSON of the runs, a list per refresh
  double interval = 1.0;  // seconds between refreshes
};

/// One run's published status.
struct PublishedRun {
  std::string directory;
  pid_t pid = 0;
  std::string json;  // status.json
  std::string view;  // status.txt
  bool final = false;
};

/// Returns the runs of this user that publish a status under `base` (where
/// runs make their private directories: $TMPDIR, else /tmp), by pid; only
/// `run` (a pid or a directory) when it is not empty. A directory of another
/// user, open to others, or of a process that is gone is skipped.
std::vector<PublishedRun> FindPublishedRuns(const std::string& base, const std::string& run);

/// Adds the `top` subcommand to `app`, bound to `arguments`.
CLI::App* AddTopCommand(CLI::App& app, TopArguments& arguments);

/// Runs `quiver top`; returns the exit status: 0 once the runs it showed
/// ended (or after one view with --once), 1 when no run is going on.
int RunTopCommand(const TopArguments& arguments);

}  // namespace quiver::cli
