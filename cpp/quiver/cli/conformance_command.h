#pragma once

// `quiver conformance`: the conformance kit (quiver/conformance) on the command line.

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace quiver::cli {

/// The options of `quiver conformance`.
struct ConformanceArguments {
  /// "quiver" (quiver.v1) or "spark" (docs/spark-protocol.md).
  std::string dialect = "quiver";
  std::string transport = "all";
  std::string payload_format = "symbol";
  std::string python_module = "quiver.conformance_udfs";
  double timeout_seconds = 30;
  std::vector<std::string> command;
};

/// Adds the subcommand to `app`, binding its options to `arguments`.
CLI::App* AddConformanceCommand(CLI::App& app, ConformanceArguments& arguments);

/// Runs the kit, printing one line per scenario and a closing count to stdout;
/// returns the exit status (0 when every scenario passed, 1 otherwise).
int RunConformanceCommand(const ConformanceArguments& arguments);

}  // namespace quiver::cli
