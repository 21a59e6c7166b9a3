#include "quiver/exec/udf_operator.h"

#include <utility>

#include <arrow/compute/initialize.h>

#include "quiver/exec/udf_checks.h"
#include "quiver/exec/udf_run_internal.h"

namespace quiver::exec {

UdfOperator::UdfOperator(worker::WorkerDispatcher* dispatcher, UdfOperatorOptions options)
    : dispatcher_(dispatcher), options_(std::move(options)) {}

UdfOperator::~UdfOperator() = default;

arrow::Result<std::unique_ptr<UdfOperator>> UdfOperator::Make(worker::WorkerDispatcher* dispatcher,
                                                              UdfOperatorOptions options) {
  if (dispatcher == nullptr) return arrow::Status::Invalid("UdfOperator needs a dispatcher");
  if (options.udfs.empty()) return arrow::Status::Invalid("UdfOperator needs at least one UDF");
  if (options.workers < 1) return arrow::Status::Invalid("workers must be at least 1");
  if (options.max_batches_in_flight_per_worker < 1) {
    return arrow::Status::Invalid("max_batches_in_flight_per_worker must be at least 1");
  }
  ARROW_RETURN_NOT_OK(CheckUdfNames(options.udfs));
  // Compute kernels (argument expressions) are registered once per process.
  ARROW_RETURN_NOT_OK(arrow::compute::Initialize());
  return std::unique_ptr<UdfOperator>(new UdfOperator(dispatcher, std::move(options)));
}

arrow::Result<std::shared_ptr<UdfRun>> UdfOperator::Execute(
    std::shared_ptr<arrow::RecordBatchReader> input) {
  if (input == nullptr) return arrow::Status::Invalid("UdfOperator::Execute needs an input");
  return internal::StartUdfRun(dispatcher_, options_, std::move(input));
}

}  // namespace quiver::exec
