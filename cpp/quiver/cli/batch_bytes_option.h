#pragma once

// The option of `quiver run` that sizes the batches sent to workers: --batch-bytes.

namespace CLI {
class App;
}

namespace quiver::cli {

struct RunOptions;

/// Adds --batch-bytes to the `run` subcommand, bound to `options`.
void AddBatchBytesOption(CLI::App* run, RunOptions& options);

}  // namespace quiver::cli
