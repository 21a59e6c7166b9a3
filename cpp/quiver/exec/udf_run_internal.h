#pragma once

// Private to exec/: the per-run state of a UdfOperator.

#include <memory>
#include <string>

#include <arrow/record_batch.h>
#include <arrow/result.h>

#include "quiver/exec/udf_operator.h"

namespace quiver::exec::internal {

/// Acquires workers, starts an execution on each, and returns the run reading
/// `input`. `runtime_label` (e.g. " (runtime 'rs', worker command ./udfs)") is
/// put beside the UDF names in every error.
arrow::Result<std::shared_ptr<UdfRun>> StartUdfRun(worker::WorkerDispatcher* dispatcher,
                                                   const UdfOperatorOptions& options,
                                                   std::shared_ptr<arrow::RecordBatchReader> input,
                                                   const std::string& runtime_label = "");

/// Starts one run per runtime the UDFs of `options` name, each on its
/// dispatcher over the same input, and returns a run whose batches hold the
/// pass-through columns and every UDF's result in the order of `options.udfs`.
/// With `name_runtimes`, errors name the runtime and its worker command.
arrow::Result<std::shared_ptr<UdfRun>> StartRuntimeRuns(
    const RuntimeDispatchers& dispatchers, bool name_runtimes, const UdfOperatorOptions& options,
    std::shared_ptr<arrow::RecordBatchReader> input);

}  // namespace quiver::exec::internal
