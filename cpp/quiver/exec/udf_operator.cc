#include "quiver/exec/udf_operator.h"

#include <set>
#include <utility>

#include <arrow/compute/initialize.h>

#include "quiver/exec/udf_checks.h"
#include "quiver/exec/udf_run_internal.h"

namespace quiver::exec {
namespace {

arrow::Status CheckOptions(const UdfOperatorOptions& options) {
  if (options.udfs.empty()) return arrow::Status::Invalid("UdfOperator needs at least one UDF");
  ARROW_RETURN_NOT_OK(CheckOperatorNumbers(options));
  ARROW_RETURN_NOT_OK(CheckUdfNames(options.udfs));
  // Compute kernels (argument expressions) are registered once per process.
  return arrow::compute::Initialize();
}

std::string RuntimeList(const RuntimeDispatchers& dispatchers) {
  std::string names;
  for (const auto& [name, dispatcher] : dispatchers) {
    names += (names.empty() ? "'" : ", '") + name + "'";
  }
  return names.empty() ? "none" : names;
}

}  // namespace

UdfOperator::UdfOperator(RuntimeDispatchers dispatchers, bool name_runtimes,
                         UdfOperatorOptions options)
    : dispatchers_(std::move(dispatchers)),
      name_runtimes_(name_runtimes),
      options_(std::move(options)) {}

UdfOperator::~UdfOperator() = default;

arrow::Result<std::unique_ptr<UdfOperator>> UdfOperator::Make(worker::WorkerDispatcher* dispatcher,
                                                              UdfOperatorOptions options) {
  if (dispatcher == nullptr) return arrow::Status::Invalid("UdfOperator needs a dispatcher");
  ARROW_RETURN_NOT_OK(CheckOptions(options));
  // One pool for every UDF: the runtime keys do not matter.
  for (auto& udf : options.udfs) udf.runtime.clear();
  return std::unique_ptr<UdfOperator>(
      new UdfOperator({{"", dispatcher}}, /*name_runtimes=*/false, std::move(options)));
}

arrow::Result<std::unique_ptr<UdfOperator>> UdfOperator::Make(RuntimeDispatchers dispatchers,
                                                              UdfOperatorOptions options) {
  ARROW_RETURN_NOT_OK(CheckOptions(options));
  for (const auto& udf : options.udfs) {
    auto found = dispatchers.find(udf.runtime);
    if (found == dispatchers.end() || found->second == nullptr) {
      return arrow::Status::Invalid(
          "UDF '", udf.name, "' names runtime '", udf.runtime,
          "', which has no dispatcher (runtimes: ", RuntimeList(dispatchers), ")");
    }
  }
  return std::unique_ptr<UdfOperator>(
      new UdfOperator(std::move(dispatchers), /*name_runtimes=*/true, std::move(options)));
}

arrow::Result<std::shared_ptr<UdfRun>> UdfOperator::Execute(
    std::shared_ptr<arrow::RecordBatchReader> input) {
  if (input == nullptr) return arrow::Status::Invalid("UdfOperator::Execute needs an input");
  return internal::StartRuntimeRuns(dispatchers_, name_runtimes_, options_, std::move(input));
}

}  // namespace quiver::exec
