#pragma once

// One protocol scenario of the conformance kit, and how a check that fails
// says which part of docs/protocol.md it holds the worker to.

#include <functional>
#include <string>

#include <arrow/status.h>

namespace quiver::conformance {

class Probe;

/// Which transports a scenario runs on.
enum class On {
  kEvery,
  /// Scenarios that need the `uds` framing (raw bytes, Data outside an execution).
  kUdsOnly,
  /// Scenarios about the gRPC service (Manage, call metadata).
  kGrpcOnly,
};

/// A scenario: drives the worker through `probe` and returns OK when every
/// answer was what the spec allows, else a Violation.
struct Scenario {
  std::string name;
  /// The part of docs/protocol.md a failure is reported against when the check
  /// that failed does not name one itself, e.g. "§2".
  std::string section;
  On on = On::kEvery;
  std::function<arrow::Status(Probe&)> run;
};

/// Returns a failure of a check: `what` went wrong, against spec `section`
/// ("§2, Errors"). The kit prints it as "WHAT (spec SECTION)".
arrow::Status Violation(const std::string& section, const std::string& what);

/// Returns the section a Violation names, or empty for any other status.
std::string ViolatedSection(const arrow::Status& status);

}  // namespace quiver::conformance
