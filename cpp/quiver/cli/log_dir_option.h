#pragma once

// `quiver run --log-dir DIR`: every line the workers write, kept in DIR as JSON
// lines, one file per worker (docs/metrics.md, "Logs"; read with `quiver logs`).

#include <string>

#include <arrow/status.h>
#include <CLI/CLI.hpp>

namespace quiver::cli {

struct RunOptions;

/// Adds --log-dir and --progress to `run`, bound to `options`.
void AddLogDirOption(CLI::App* run, RunOptions* options);

/// Makes `directory` (and its parents) when it does not exist and checks the
/// engine may create files in it; a usage error (exit 2) otherwise, before
/// any worker starts.
arrow::Status PrepareLogDir(const std::string& directory);

}  // namespace quiver::cli
