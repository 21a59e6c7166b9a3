#include "quiver/protocol/udf_error.h"

#include <cstring>
#include <utility>

namespace quiver {

const char* UdfErrorKindName(UdfErrorKind kind) {
  switch (kind) {
    case UdfErrorKind::kUserError:
      return "user error";
    case UdfErrorKind::kWorkerError:
      return "worker error";
    case UdfErrorKind::kWrongRowCount:
      return "wrong row count";
    case UdfErrorKind::kWrongResultSchema:
      return "wrong result schema";
    case UdfErrorKind::kTimeout:
      return "timeout";
    case UdfErrorKind::kWorkerLost:
      return "worker lost";
    case UdfErrorKind::kProtocolViolation:
      return "protocol violation";
    case UdfErrorKind::kBatchTooLarge:
      return "batch too large";
    case UdfErrorKind::kOverMemoryCap:
      return "over memory cap";
  }
  return "unknown";
}

std::string UdfErrorDetail::ToString() const {
  std::string text = UdfErrorKindName(kind);
  if (!udf_name.empty()) text += " in UDF '" + udf_name + "'";
  if (!error_class.empty()) text += " (" + error_class + ")";
  if (!worker.empty()) text += " on " + worker;
  return text;
}

bool UdfErrorDetail::retryable() const {
  return kind == UdfErrorKind::kWorkerLost || kind == UdfErrorKind::kTimeout;
}

const UdfErrorDetail* UdfErrorDetailOf(const arrow::Status& status) {
  const auto& detail = status.detail();
  if (detail == nullptr || std::strcmp(detail->type_id(), UdfErrorDetail::kTypeId) != 0) {
    return nullptr;
  }
  return static_cast<const UdfErrorDetail*>(detail.get());
}

arrow::Status WithUdfError(const arrow::Status& status, UdfErrorDetail detail) {
  return status.WithDetail(std::make_shared<UdfErrorDetail>(std::move(detail)));
}

arrow::Status AsProtocolViolation(const arrow::Status& status) {
  UdfErrorDetail detail;
  detail.kind = UdfErrorKind::kProtocolViolation;
  return WithUdfError(status, std::move(detail));
}

}  // namespace quiver
