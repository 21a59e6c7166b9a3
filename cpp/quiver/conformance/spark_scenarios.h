#pragma once

// The scenarios of the Spark-dialect kit: those of Spark's own worker test
// trait (one request, several, no input, a user error, an init error) and every
// rule of docs/spark-protocol.md the kit can provoke.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "quiver/conformance/spark_probe.h"

namespace quiver::conformance {

/// One scenario; `own_worker` ones get a worker of their own (they stop it).
struct SparkScenario {
  std::string name;
  /// The section of docs/spark-protocol.md a failure is reported against.
  std::string section;
  bool own_worker = false;
  std::function<arrow::Status(SparkProbe&)> run;
};

/// Scenarios on Execute streams (spark_scenarios_stream.cc).
std::vector<SparkScenario> SparkStreamScenarios();
/// Scenarios on Manage: heartbeats and shutdown (spark_scenarios_manage.cc).
std::vector<SparkScenario> SparkManageScenarios();

/// Opens a stream and runs Init of `function` up to a successful InitResponse.
arrow::Result<std::unique_ptr<transport::spark::ExecuteCall>> OpenReady(
    SparkProbe& probe, const std::string& function, const std::shared_ptr<arrow::DataType>& type);

}  // namespace quiver::conformance
