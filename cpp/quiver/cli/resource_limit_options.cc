#include "quiver/cli/resource_limit_options.h"

#include <string>

#include <arrow/result.h>

#include "quiver/cli/usage_error.h"
#include "quiver/worker/memory_cap.h"

namespace quiver::cli {
namespace {

// Parses `text` as a size, naming `option` in the error.
arrow::Result<int64_t> SizeOption(const std::string& option, const std::string& text) {
  auto bytes = worker::ParseByteSize(text);
  if (!bytes.ok()) return UsageError(option + ": " + bytes.status().message());
  return bytes;
}

}  // namespace

void AddResourceLimitOptions(CLI::App* run, RunOptions* options) {
  run->add_option("--worker-memory", options->worker_memory,
                  "Most resident memory of each worker, e.g. 512M or 2G; a worker over it "
                  "is stopped and the run fails saying so (default: no cap)");
  run->add_option("--max-in-flight-bytes", options->max_in_flight_bytes,
                  "Most bytes of batches and results between the engine and one worker, "
                  "e.g. 256M; bounds the engine's memory when results are much larger than "
                  "their input")
      ->capture_default_str();
}

arrow::Status ApplyWorkerMemory(const RunOptions& options, worker::WorkerSpec* spec) {
  if (options.worker_memory.empty()) return arrow::Status::OK();
  ARROW_ASSIGN_OR_RAISE(spec->memory_limit_bytes,
                        SizeOption("--worker-memory", options.worker_memory));
  return arrow::Status::OK();
}

arrow::Status ApplyInFlightBytes(const RunOptions& options,
                                 exec::UdfOperatorOptions* operator_options) {
  ARROW_ASSIGN_OR_RAISE(operator_options->max_bytes_in_flight_per_worker,
                        SizeOption("--max-in-flight-bytes", options.max_in_flight_bytes));
  return arrow::Status::OK();
}

}  // namespace quiver::cli
