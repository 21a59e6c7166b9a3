#pragma once

// The `quiver run` options of class UDFs and per-UDF Python environments:
// --udf-arg NAME.KEY=VALUE (udf_args.h) and --requirements FILE (python_envs.h).

#include "quiver/cli/run_command.h"

namespace CLI {
class App;
}

namespace quiver::cli {

/// Adds --udf-arg and --requirements to `run`, bound to `options`.
void AddClassEnvOptions(CLI::App* run, RunOptions* options);

}  // namespace quiver::cli
