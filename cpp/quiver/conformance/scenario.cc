#include "quiver/conformance/scenario.h"

#include <memory>
#include <string>
#include <utility>

#include <arrow/status.h>

namespace quiver::conformance {
namespace {

// Carries the spec section a failed check holds the worker to.
class SpecSection : public arrow::StatusDetail {
 public:
  explicit SpecSection(std::string section) : section_(std::move(section)) {}
  const char* type_id() const override { return "quiver::conformance::SpecSection"; }
  std::string ToString() const override { return "spec " + section_; }
  const std::string& section() const { return section_; }

 private:
  std::string section_;
};

}  // namespace

arrow::Status Violation(const std::string& section, const std::string& what) {
  return arrow::Status(arrow::StatusCode::Invalid, what, std::make_shared<SpecSection>(section));
}

std::string ViolatedSection(const arrow::Status& status) {
  const auto& detail = status.detail();
  if (detail == nullptr || std::string(detail->type_id()) != "quiver::conformance::SpecSection") {
    return "";
  }
  return static_cast<const SpecSection&>(*detail).section();
}

}  // namespace quiver::conformance
