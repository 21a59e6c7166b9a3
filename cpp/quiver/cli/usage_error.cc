#include "quiver/cli/usage_error.h"

#include <memory>
#include <utility>

namespace quiver::cli {
namespace {

constexpr char kUsageErrorTypeId[] = "quiver::cli::UsageError";

class UsageErrorDetail : public arrow::StatusDetail {
 public:
  const char* type_id() const override { return kUsageErrorTypeId; }
  std::string ToString() const override { return "usage error"; }
};

}  // namespace

arrow::Status UsageError(std::string message) {
  return arrow::Status(arrow::StatusCode::Invalid, std::move(message),
                       std::make_shared<UsageErrorDetail>());
}

bool IsUsageError(const arrow::Status& status) {
  const auto& detail = status.detail();
  // Compare the id's text, not its address: the string literal may be merged or not.
  return detail != nullptr && std::string(detail->type_id()) == kUsageErrorTypeId;
}

}  // namespace quiver::cli
