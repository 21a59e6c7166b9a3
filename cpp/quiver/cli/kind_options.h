#pragma once

// The options of `quiver run` for the grouped and table kinds:
//
//   --group-by K1,K2 --apply 'PATH.py:FUNCTION'            grouped map
//   --group-by K --agg 'NAME=PATH.py:FUNCTION(COL, ...)'    grouped aggregates (repeatable)
//   --udtf 'NAME=PATH.py:FUNCTION(ARG, ...)'                a table function (one per run)
//   --max-group-bytes N                                     the largest group sent to a worker
//
// They replace --udf: a run is either scalar UDFs or one of these kinds.

#include <cstdint>
#include <string>
#include <vector>

#include <arrow/status.h>

namespace CLI {
class App;
}

namespace quiver::cli {

struct RunOptions;

/// What the command line says about the grouped and table kinds.
struct KindOptions {
  std::string group_by;
  std::string apply;
  std::vector<std::string> aggs;
  std::string udtf;
  int64_t max_group_bytes = int64_t{512} << 20;

  /// Whether the run is of one of these kinds (rather than of --udf).
  bool Active() const {
    return !group_by.empty() || !apply.empty() || !aggs.empty() || !udtf.empty();
  }
};

/// Adds the options above to the `run` subcommand, bound to `options`.
void AddKindOptions(CLI::App* run, KindOptions* options);

/// Runs `quiver run` for a grouped or table kind (options.kinds.Active()).
arrow::Status RunKindCommand(const RunOptions& options);

}  // namespace quiver::cli
