#pragma once

// The conformance kit in Spark's dialect: starts a worker command as
// docs/spark-protocol.md says an engine does, over a Unix socket and a loopback
// TCP port, and runs every scenario of spark_scenarios.h against it.
// `quiver conformance --dialect spark` is its command line.

#include <functional>

#include <arrow/result.h>

#include "quiver/conformance/conformance.h"
#include "quiver/conformance/spark_probe.h"

namespace quiver::conformance {

/// Runs every scenario on every transport of `options`, calling `report` after each.
arrow::Result<ConformanceSummary> RunSparkConformance(
    const SparkKitOptions& options, const std::function<void(const ScenarioOutcome&)>& report);

}  // namespace quiver::conformance
