#pragma once

// `quiver run --sandbox` and `--sandbox-read PATH`: run the workers in the
// sandbox tier (sandbox/sandbox_policy.h, docs/security.md).

#include <string>
#include <vector>

#include <arrow/status.h>
#include <CLI/CLI.hpp>

#include "quiver/cli/run_command.h"
#include "quiver/cli/runtime_spec.h"
#include "quiver/worker/worker_spec.h"

namespace quiver::cli {

/// Adds --sandbox and --sandbox-read to `run`.
void AddSandboxOptions(CLI::App* run, RunOptions* options);

/// With --sandbox: refuses the run when this machine cannot sandbox (never
/// runs unsandboxed), starts the workers by fork/exec (a fork server's
/// children are not the engine's to sandbox), and asks for the sandbox in the
/// workers' environment, with read access to the UDF files' folders, the
/// Python worker's import path and every --sandbox-read path.
arrow::Status ApplySandboxOptions(const RunOptions& options, worker::WorkerSpec* spec);

/// The sandbox of a runtime whose UDFs declare @quiver.udf(sandbox=...): as
/// with --sandbox (refused, naming the UDFs, where it cannot be had), with read
/// access to the UDFs' folders and declared paths, the Python worker's import
/// path and, under --sandbox, what the whole run may read.
arrow::Status ApplyUdfSandbox(const RunOptions& options, const UdfSandbox& sandbox,
                              worker::WorkerSpec* spec);

}  // namespace quiver::cli
