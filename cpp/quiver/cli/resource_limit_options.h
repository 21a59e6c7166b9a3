#pragma once

// The options of `quiver run` that bound what workers may cost the machine:
// --worker-memory (each worker's memory cap) and --max-in-flight-bytes (the
// engine's in-flight window in bytes).

#include <arrow/status.h>
#include <CLI/CLI.hpp>

#include "quiver/cli/run_command.h"
#include "quiver/exec/udf_operator.h"
#include "quiver/worker/worker_spec.h"

namespace quiver::cli {

/// Adds --worker-memory and --max-in-flight-bytes to `run`, bound to `options`.
void AddResourceLimitOptions(CLI::App* run, RunOptions* options);

/// Sets the memory cap of `spec` from --worker-memory; fails on a bad size.
arrow::Status ApplyWorkerMemory(const RunOptions& options, worker::WorkerSpec* spec);

/// Sets the byte bound of the in-flight window from --max-in-flight-bytes.
arrow::Status ApplyInFlightBytes(const RunOptions& options,
                                 exec::UdfOperatorOptions* operator_options);

}  // namespace quiver::cli
