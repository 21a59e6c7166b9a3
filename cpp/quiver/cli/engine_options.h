#pragma once

// The options of `quiver run` about the engine's batches and reading.

namespace CLI {
class App;
}

namespace quiver::cli {

struct RunOptions;

/// Adds --batch-bytes to the `run` subcommand, bound to `options`.
void AddEngineOptions(CLI::App* run, RunOptions& options);

}  // namespace quiver::cli
