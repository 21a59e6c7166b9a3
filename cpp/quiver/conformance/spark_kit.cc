#include "quiver/conformance/spark_kit.h"

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "quiver/conformance/scenario.h"
#include "quiver/conformance/spark_scenarios.h"

namespace quiver::conformance {
namespace {

// A private directory (0700, mkdtemp) for the workers' sockets, removed at the end.
class KitDirectory {
 public:
  KitDirectory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "quiver-spark-kit-XXXXXX");
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~KitDirectory() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

arrow::Result<ConformanceSummary> RunSparkConformance(
    const SparkKitOptions& options, const std::function<void(const ScenarioOutcome&)>& report) {
  for (const auto& transport : options.transports) {
    if (transport != "unix" && transport != "tcp") {
      return arrow::Status::Invalid("unknown transport '", transport,
                                    "' for Spark's dialect (unix, tcp)");
    }
  }
  KitDirectory directory;
  if (directory.path().empty()) return arrow::Status::IOError("cannot make a private directory");
  std::vector<SparkScenario> scenarios = SparkStreamScenarios();
  for (auto& scenario : SparkManageScenarios()) scenarios.push_back(std::move(scenario));
  ConformanceSummary summary;
  int started = 0;
  for (const auto& transport : options.transports) {
    std::unique_ptr<SparkProbe> shared;
    for (const auto& scenario : scenarios) {
      ScenarioOutcome outcome{transport, scenario.name, arrow::Status::OK(), scenario.section};
      std::unique_ptr<SparkProbe> own;
      SparkProbe* probe = nullptr;
      // A worker that failed a scenario may be in any state: the next gets a new one.
      auto& holder = scenario.own_worker ? own : shared;
      if (holder == nullptr || holder->process().TryWait()) {
        auto fresh = SparkProbe::Start(options, transport, directory.path(), ++started);
        if (fresh.ok()) holder = std::move(*fresh);
        outcome.status = fresh.status();
      }
      probe = holder.get();
      if (probe != nullptr && outcome.status.ok()) outcome.status = scenario.run(*probe);
      if (!outcome.status.ok()) {
        const std::string section = ViolatedSection(outcome.status);
        if (!section.empty()) outcome.section = section;
        if (!scenario.own_worker) shared.reset();
      }
      (outcome.status.ok() ? summary.passed : summary.failed) += 1;
      report(outcome);
    }
  }
  return summary;
}

}  // namespace quiver::conformance
