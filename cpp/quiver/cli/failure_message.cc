#include "quiver/cli/failure_message.h"

#include "quiver/protocol/udf_error.h"

namespace quiver::cli {
namespace {

// What the user can do about a failure of `kind`.
const char* Advice(UdfErrorKind kind) {
  switch (kind) {
    case UdfErrorKind::kUserError:
      return "fix the UDF or its input; the traceback above shows where it raised";
    case UdfErrorKind::kWorkerError:
      return "the worker could not load or run the UDF as declared (a function it does not "
             "have, a wrong result type or length); fix the UDF spec or the UDF";
    case UdfErrorKind::kWrongRowCount:
    case UdfErrorKind::kWrongResultSchema:
      return "the UDF's result does not fit its declaration; fix the UDF";
    case UdfErrorKind::kTimeout:
      return "raise --batch-timeout if the UDF is only slow, or lower --batch-rows";
    case UdfErrorKind::kWorkerLost:
      return "the worker process ended; its output above may say why (memory, a crash)";
    case UdfErrorKind::kProtocolViolation:
      return "the worker does not follow the quiver.v1 protocol; check its version";
    case UdfErrorKind::kBatchTooLarge:
      return "lower --batch-rows so that each batch fits in one message";
    case UdfErrorKind::kOverMemoryCap:
      return "raise --worker-memory, or lower --batch-rows if memory grows with the batch";
  }
  return "";
}

}  // namespace

std::string FailureMessage(const arrow::Status& status) {
  std::string text = status.message();
  const UdfErrorDetail* detail = UdfErrorDetailOf(status);
  if (detail == nullptr) return text;
  return text + "\n(" + UdfErrorKindName(detail->kind) + ": " + Advice(detail->kind) + ")";
}

}  // namespace quiver::cli
