#include "quiver/cli/conformance_command.h"

#include <chrono>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "quiver/cli/failure_message.h"
#include "quiver/conformance/conformance.h"
#include "quiver/conformance/spark_kit.h"

namespace quiver::cli {
namespace {

constexpr char kDescription[] =
    "Check that a worker speaks the quiver.v1 protocol: start WORKER_COMMAND as the engine "
    "does and run every protocol scenario against it";

constexpr char kFooter[] =
    R"(The worker must offer four functions (docs/protocol.md, "Testing your worker"):
  identity(x)      x unchanged, for any argument type
  upper(s)         a string column in upper case
  add_one(x)       x + 1 for int64 and for float64
  raise_error(x)   fails on every batch
named by --payload-format: `symbol` sends the function name (compiled workers,
e.g. the C++ and Rust SDKs); `python/ref` sends MODULE:NAME with MODULE from
--python-module (quiver.conformance_udfs ships with the quiver package).

Output: one line per scenario and transport (PASS, or FAIL with what went wrong
and the section of the spec), then `N passed, N failed`. Exit status 0 when
every scenario passed, 1 otherwise, 2 for a bad command line.

--dialect spark runs the kit of Spark's UdfWorker protocol (docs/spark-protocol.md)
over --transport unix (a socket path) and tcp (a loopback port) instead.

Examples:
  quiver conformance -- ./build/cpp/examples/udf_worker/quiver_example_worker
  quiver conformance --dialect spark --payload-format python/ref \
      -- .venv/bin/python -m quiver.worker --dialect spark
  quiver conformance --transport uds --payload-format python/ref \
      -- .venv/bin/python -m quiver.worker)";

void PrintOutcome(const conformance::ScenarioOutcome& outcome) {
  std::printf("%s\n", conformance::FormatOutcome(outcome).c_str());
  std::fflush(stdout);
}

// Prints the summary line of a run; returns the exit status.
int Summarize(const arrow::Result<conformance::ConformanceSummary>& summary) {
  if (!summary.ok()) {
    std::fprintf(stderr, "quiver: error: %s\n",
                 EscapeInvalidUtf8(summary.status().message()).c_str());
    return 1;
  }
  std::printf("%d passed, %d failed\n", summary->passed, summary->failed);
  return summary->failed == 0 ? 0 : 1;
}

int RunSparkConformanceCommand(const ConformanceArguments& arguments) {
  conformance::SparkKitOptions options;
  options.command = arguments.command;
  if (arguments.transport != "all") options.transports = {arguments.transport};
  options.payload_format = arguments.payload_format;
  options.python_module = arguments.python_module;
  options.timeout =
      std::chrono::milliseconds(static_cast<int64_t>(arguments.timeout_seconds * 1000));
  return Summarize(conformance::RunSparkConformance(options, PrintOutcome));
}

}  // namespace

CLI::App* AddConformanceCommand(CLI::App& app, ConformanceArguments& arguments) {
  CLI::App* command = app.add_subcommand("conformance", kDescription);
  command->footer(kFooter);
  command
      ->add_option("--dialect", arguments.dialect,
                   "Protocol the worker speaks: quiver (quiver.v1) or spark (Spark's UdfWorker, "
                   "docs/spark-protocol.md; its transports are unix and tcp)")
      ->check(CLI::IsMember({"quiver", "spark"}))
      ->capture_default_str();
  command->add_option("--transport", arguments.transport, "Transport to test, or all")
      ->check(CLI::IsMember({"uds", "shm", "grpc+unix", "grpc+tcp", "unix", "tcp", "all"}))
      ->capture_default_str();
  command
      ->add_option("--payload-format", arguments.payload_format,
                   "How the kit names the worker's functions")
      ->check(CLI::IsMember({"symbol", "python/ref"}))
      ->capture_default_str();
  command
      ->add_option("--python-module", arguments.python_module,
                   "Module holding the functions (python/ref only)")
      ->capture_default_str();
  command
      ->add_option("--timeout", arguments.timeout_seconds, "Seconds the worker has for each answer")
      ->capture_default_str();
  command
      ->add_option("WORKER_COMMAND", arguments.command,
                   "The worker program and its arguments, after --")
      ->required()
      ->expected(-1);
  return command;
}

int RunConformanceCommand(const ConformanceArguments& arguments) {
  if (arguments.dialect == "spark") return RunSparkConformanceCommand(arguments);
  conformance::ConformanceOptions options;
  options.command = arguments.command;
  if (arguments.transport != "all") options.transports = {arguments.transport};
  options.probe.payload_format = arguments.payload_format;
  options.probe.python_module = arguments.python_module;
  options.probe.timeout =
      std::chrono::milliseconds(static_cast<int64_t>(arguments.timeout_seconds * 1000));
  auto summary = conformance::RunConformance(options, [](const conformance::ScenarioOutcome& o) {
    std::printf("%s\n", conformance::FormatOutcome(o).c_str());
    std::fflush(stdout);
  });
  if (!summary.ok()) {
    std::fprintf(stderr, "quiver: error: %s\n",
                 EscapeInvalidUtf8(summary.status().message()).c_str());
    return 1;
  }
  std::printf("%d passed, %d failed\n", summary->passed, summary->failed);
  return summary->failed == 0 ? 0 : 1;
}

}  // namespace quiver::cli
