#pragma once

// The conformance kit's scenarios, by theme. Each list is run in order on one
// worker per transport; a scenario that ends the worker retires it.

#include <vector>

#include "quiver/conformance/scenario.h"

namespace quiver::conformance {

/// Command lines and secrets other than the engine's: a trailing newline, an
/// empty secret, an unknown option, `--name=value`.
std::vector<Scenario> StartScenarios();

/// Hello, authentication, Init with every type family, executions, batches.
std::vector<Scenario> ExecutionScenarios();

/// PayloadChunk, Heartbeat, Cancel, UDF errors, unknown functions.
std::vector<Scenario> ControlScenarios();

/// Messages the spec does not allow, sent on purpose.
std::vector<Scenario> ViolationScenarios();

/// Shutdown (idle, with cancel_running), SIGTERM, a closed connection.
std::vector<Scenario> LifecycleScenarios();

}  // namespace quiver::conformance
