#pragma once

// Private to exec/: the per-run state of a UdfOperator.

#include <memory>

#include <arrow/record_batch.h>
#include <arrow/result.h>

#include "quiver/exec/udf_operator.h"

namespace quiver::exec::internal {

/// Acquires workers, starts a session on each, and returns the run reading `input`.
arrow::Result<std::shared_ptr<UdfRun>> StartUdfRun(worker::WorkerDispatcher* dispatcher,
                                                   const UdfOperatorOptions& options,
                                                   std::shared_ptr<arrow::RecordBatchReader> input);

}  // namespace quiver::exec::internal
