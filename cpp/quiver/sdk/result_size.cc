#include "quiver/sdk/result_size.h"

#include <cstdio>

#include <arrow/result.h>
#include <arrow/type.h>

#include "quiver/sdk/errors.h"

namespace quiver::sdk {
namespace {

// "2.00 GiB (2,147,488,048 bytes)", as the Python worker says it.
std::string BytesText(int64_t size) {
  std::string digits = std::to_string(size);
  for (int at = static_cast<int>(digits.size()) - 3; at > 0; at -= 3) digits.insert(at, ",");
  char gib[32];
  std::snprintf(gib, sizeof(gib), "%.2f GiB", static_cast<double>(size) / (int64_t{1} << 30));
  return std::string(gib) + " (" + digits + " bytes)";
}

}  // namespace

arrow::Status CheckResultSize(const arrow::RecordBatch& result, const std::string& udf_name,
                              int64_t limit) {
  ARROW_ASSIGN_OR_RAISE(const int64_t size, protocol::EncodedBatchSize(result));
  if (size <= limit) return arrow::Status::OK();
  std::string columns;
  for (const auto& field : result.schema()->fields()) {
    columns += (columns.empty() ? "'" : ", '") + field->name() + "'";
  }
  return WorkerError("the result of one batch (" + columns + ") is " + BytesText(size) +
                         " in Arrow IPC form, over the limit of " + BytesText(limit) +
                         " for one message to the engine; give the UDF smaller batches (quiver "
                         "run --batch-rows or --batch-bytes)",
                     udf_name);
}

}  // namespace quiver::sdk
