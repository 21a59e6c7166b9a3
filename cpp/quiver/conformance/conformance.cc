#include "quiver/conformance/conformance.h"

#include <utility>

#include <arrow/compute/initialize.h>

#include "quiver/conformance/kit_transport.h"
#include "quiver/conformance/scenarios.h"
#include "quiver/worker/worker_spec.h"

namespace quiver::conformance {
namespace {

std::vector<Scenario> AllScenarios() {
  std::vector<Scenario> all;
  for (auto list : {ExecutionScenarios(), ControlScenarios(), ViolationScenarios(),
                    LifecycleScenarios(), StartScenarios()}) {
    for (auto& scenario : list) all.push_back(std::move(scenario));
  }
  return all;
}

bool RunsOn(const Scenario& scenario, const std::string& transport) {
  switch (scenario.on) {
    case On::kUdsOnly:  // shm speaks the uds framing on its socket
      return transport == "uds" || transport == "shm";
    case On::kGrpcOnly:
      return transport.rfind("grpc", 0) == 0;
    case On::kEvery:
      return true;
  }
  return true;
}

ScenarioOutcome RunScenario(const Scenario& scenario, Probe& probe) {
  ScenarioOutcome outcome{probe.transport(), scenario.name, arrow::Status::OK(), scenario.section};
  arrow::Status ready = probe.EnsureWorker();
  if (!ready.ok()) {
    outcome.status = ready.WithMessage("the worker did not start: ", ready.message());
    outcome.section = "§1";
    return outcome;
  }
  outcome.status = scenario.run(probe);
  if (!outcome.status.ok()) {
    const std::string section = ViolatedSection(outcome.status);
    if (!section.empty()) outcome.section = section;
    // The worker's state is unknown now: the next scenario gets a new one.
    probe.Retire();
  }
  return outcome;
}

}  // namespace

std::string FormatOutcome(const ScenarioOutcome& outcome) {
  std::string line =
      (outcome.status.ok() ? "PASS [" : "FAIL [") + outcome.transport + "] " + outcome.scenario;
  if (!outcome.status.ok()) {
    line += " \xe2\x80\x94 " + outcome.status.message() + " (spec " + outcome.section + ")";
  }
  return line;
}

std::vector<std::string> ScenarioNames() {
  std::vector<std::string> names;
  for (const auto& scenario : AllScenarios()) names.push_back(scenario.name);
  return names;
}

arrow::Result<ConformanceSummary> RunConformance(
    const ConformanceOptions& options, const std::function<void(const ScenarioOutcome&)>& report) {
  if (options.command.empty()) return arrow::Status::Invalid("no worker command given");
  ARROW_RETURN_NOT_OK(arrow::compute::Initialize());
  ConformanceSummary summary;
  const auto scenarios = AllScenarios();
  for (const auto& transport : options.transports) {
    worker::WorkerSpec spec;
    spec.command = options.command;
    ARROW_ASSIGN_OR_RAISE(spec.transport, KitTransport(transport));
    spec.batch_timeout = options.probe.timeout;
    spec.stop_grace = std::chrono::milliseconds(2000);
    spec.max_idle_workers = 1;
    ARROW_ASSIGN_OR_RAISE(auto dispatcher, worker::WorkerDispatcher::Make(std::move(spec)));
    ProbeOptions probe_options = options.probe;
    probe_options.command = options.command;
    Probe probe(dispatcher.get(), transport, probe_options);
    for (const auto& scenario : scenarios) {
      if (!RunsOn(scenario, transport)) continue;
      ScenarioOutcome outcome = RunScenario(scenario, probe);
      (outcome.status.ok() ? summary.passed : summary.failed) += 1;
      report(outcome);
    }
  }
  return summary;
}

}  // namespace quiver::conformance
