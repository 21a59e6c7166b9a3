#pragma once

// `quiver run ... --ray ADDRESS`: the same UDFs over a Ray cluster, one output file
// per input file. The command parses and checks the options as for a local run,
// then replaces itself with the Python driver (`PYTHON -m quiver.ray run`), which
// runs the files on Ray actors that each hold a quiver.Session (docs/ray.md).

#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <CLI/CLI.hpp>

#include "quiver/cli/run_command.h"

namespace quiver::cli {

/// The options `quiver run` takes for Ray.
struct RayOptions {
  /// Ray cluster: "auto" (the one `ray start` began on this machine), "local" (a new
  /// one-node Ray), or HOST:PORT of its head; empty runs locally, without Ray.
  std::string address;
  /// Ray actors (each with --workers quiver workers); 0: the cluster's CPUs / --workers.
  int actors = 0;
  /// Times a file is run again after its quiver worker or its actor died.
  int retries = 2;
};

/// Adds --ray, --ray-actors and --ray-retries to the `run` subcommand.
void AddRayOptions(CLI::App* run, RayOptions& ray);

/// Returns the command line of the Python driver for `options` and `ray`:
/// PYTHON -m quiver.ray run INPUT -o OUTPUT --calls JSON ... Checks what a local run
/// checks before starting anything (numbers, --udf specs, --select, the
/// interpreter) and refuses what Ray runs do not support (--runtime, --input-mode rows).
arrow::Result<std::vector<std::string>> RayDriverCommand(const RunOptions& options,
                                                         const RayOptions& ray);

/// Replaces this process with the driver of RayDriverCommand; returns only on failure.
arrow::Status RunOnRay(const RunOptions& options, const RayOptions& ray);

}  // namespace quiver::cli
