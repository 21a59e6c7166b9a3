#pragma once

// The conformance kit: starts a worker command as the engine does, over each
// transport, and runs every protocol scenario of docs/protocol.md against it
// ("Testing your worker" there lists the scenarios and the functions the
// worker must offer). `quiver conformance` is its command line.

#include <functional>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

#include "quiver/conformance/probe.h"

namespace quiver::conformance {

/// What to test.
struct ConformanceOptions {
  /// The worker command and its arguments; the kit appends the transport's
  /// arguments and `--id ID --connection ENDPOINT`, as the engine does.
  std::vector<std::string> command;
  /// Transports to test: "uds", "grpc+unix", "grpc+tcp".
  std::vector<std::string> transports = {"uds", "grpc+unix", "grpc+tcp"};
  ProbeOptions probe;
};

/// How one scenario went on one transport.
struct ScenarioOutcome {
  std::string transport;
  std::string scenario;
  /// OK when it passed; else what went wrong.
  arrow::Status status;
  /// The spec section a failure is reported against ("§2, Errors").
  std::string section;
};

/// Returns "PASS [uds] hello" or "FAIL [uds] hello — WHAT (spec §1)".
std::string FormatOutcome(const ScenarioOutcome& outcome);

/// Counts of a whole run.
struct ConformanceSummary {
  int passed = 0;
  int failed = 0;
};

/// Returns the names of the scenarios, in the order they run.
std::vector<std::string> ScenarioNames();

/// Runs every scenario on every transport of `options`, calling `report` after
/// each. Fails only when the kit itself cannot run (an unknown transport).
arrow::Result<ConformanceSummary> RunConformance(
    const ConformanceOptions& options, const std::function<void(const ScenarioOutcome&)>& report);

}  // namespace quiver::conformance
