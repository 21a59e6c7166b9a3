// The `quiver` command: run Python UDFs over Arrow data in worker processes.

#include <signal.h>

#include <cstdio>
#include <string>

#include <arrow/compute/initialize.h>
#include <arrow/config.h>
#include <CLI/CLI.hpp>

#include "quiver/cli/batch_bytes_option.h"
#include "quiver/cli/class_env_options.h"
#include "quiver/cli/conformance_command.h"
#include "quiver/cli/failure_message.h"
#include "quiver/cli/fork_server_options.h"
#include "quiver/cli/interrupt.h"
#include "quiver/cli/log_dir_option.h"
#include "quiver/cli/logs_command.h"
#include "quiver/cli/python_interpreter.h"
#include "quiver/cli/ray_options.h"
#include "quiver/cli/resource_limit_options.h"
#include "quiver/cli/run_command.h"
#include "quiver/cli/sandbox_options.h"
#include "quiver/cli/top_command.h"
#include "quiver/cli/usage_error.h"
#include "quiver/transport/registry.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr char kDescription[] =
    "quiver runs user-defined functions (UDFs) over Apache Arrow data in worker processes "
    "(Python, or any program that speaks the quiver.v1 protocol).";

constexpr char kMainFooter[] = R"(Example:
  quiver run people.parquet --udf 'loud=udfs.py:shout(name)' -o out.parquet

Run 'quiver run --help' for the UDF spec grammar and more examples; 'quiver top'
watches a run going on in another terminal, 'quiver logs DIR' searches the worker
logs a run kept with --log-dir.)";

constexpr char kRunDescription[] =
    "Run UDFs over a file: writes INPUT's columns and one column per UDF to OUTPUT";

constexpr char kRunFooter[] = R"(UDF specs (--udf, repeatable):
  NAME=PATH.py:FUNCTION(ARG, ...)         a function in a Python file (a relative
                                          path starts at the current directory)
  NAME=package.module:FUNCTION(ARG, ...)  a function in an importable module
  NAME is the result column. Each ARG is
    a column           name, `column with spaces`
    a literal          42 (int64), 2.5 (float64), 'text' ('' for a quote),
                       true, false, null
    a compute call     any Arrow compute function by name, nested freely:
                       utf8_upper(name), add(value, 1),
                       binary_join_element_wise(first, last, ' ')
  The UDF itself is declared in Python with @quiver.udf(returns="TYPE"):
    import pandas as pd, quiver
    @quiver.udf(returns="string")
    def shout(name: pd.Series) -> pd.Series:
        return name.str.upper() + "!"

Runtimes (--runtime, repeatable): UDFs in any language whose worker speaks the
quiver.v1 protocol (e.g. built with the C++ or Rust worker SDK):
  --runtime 'NAME=COMMAND [ARG ...]'       declares runtime NAME; its workers are
                                          started as COMMAND ARG ... --id ID
                                          --connection ENDPOINT
  NAME=RUNTIME:FUNCTION(ARG, ...)         a UDF spec on that runtime: FUNCTION is
                                          the name the worker registered (payload
                                          format `symbol`)
  NAME=py:PATH.py:FUNCTION(ARG, ...)      Python, named explicitly (`py` is the
                                          default runtime; write py: for a Python
                                          module named like a declared runtime)
  Each runtime has its own workers (--workers each); results come back beside
  each other in input order, in the order of the --udf options.

Formats come from the extensions (or --input-format/--output-format):
  .parquet .pq    Parquet        .csv        CSV with a header row
  .arrow .feather .ipc           Arrow IPC file (input: file or stream)
  .arrows         Arrow IPC stream
  noop            (output only) discard the results, e.g. to time the UDFs

Examples:
  # one UDF, every input column kept
  quiver run people.parquet --udf 'loud=udfs.py:shout(name)' -o out.parquet
  # two UDFs, keep only id, four workers
  quiver run people.parquet --select id \
      --udf 'loud=udfs.py:shout(name)' \
      --udf 'gross=udfs.py:price_with_tax(value)' --workers 4 -o out.arrow
  # compute an argument first, pass a constant
  quiver run people.csv --udf 'tag=udfs.py:label(utf8_lower(city), 3)' -o out.csv
  # a C++ UDF and a Python UDF in one run
  quiver run people.parquet --runtime 'cc=./build/my_udf_worker' \
      --udf 'up=cc:upper(name)' --udf 'loud=py:udfs.py:shout(name)' -o out.parquet
  # measure the UDFs alone
  quiver run big.parquet --udf 'x=udfs.py:shout(name)' --output-format noop

The output is written to a temporary file beside OUTPUT and renamed over it only
when the run succeeded: a failed or interrupted run leaves no partial output, and
a temporary file left by a killed run is removed by the next run to that OUTPUT.
OUTPUT may not be INPUT unless --force is given.
Exit status: 0 success, 1 failure, 2 bad command line, 130 interrupted.)";

// The --transport help: every transport the registry offers, under all its names.
std::string TransportHelp() {
  std::string help;
  for (const auto& offered : quiver::transport::OfferedTransports()) {
    std::string names;
    for (const auto& name : offered.names) names += (names.empty() ? "" : " or ") + name;
    help += (help.empty() ? "" : "; ") + names + ": " + offered.description;
  }
  return help;
}

std::string VersionText() {
  return std::string("quiver ") + QUIVER_VERSION + " (Apache Arrow " +
         arrow::GetBuildInfo().version_string + ")";
}

// Binds the options of `quiver run` to `options`; the optional ones go to
// `formats`/`select` first, as CLI11 2.1 has no std::optional binding.
struct RunArguments {
  quiver::cli::RunOptions options;
  std::string input_format;
  std::string output_format;
  std::string select;
};

CLI::App* AddRunCommand(CLI::App& app, RunArguments& arguments) {
  auto& options = arguments.options;
  CLI::App* run = app.add_subcommand("run", kRunDescription);
  run->footer(kRunFooter);
  run->add_option("INPUT", options.input, "Input file (Parquet, CSV or Arrow IPC)")->required();
  run->add_option("--udf", options.udf_specs,
                  "UDF to run: 'NAME=PATH.py:FUNCTION(ARG, ...)' (repeatable; see below)")
      ->type_size(1)
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run->add_option("--runtime", options.runtime_specs,
                  "Another kind of worker: 'NAME=COMMAND [ARG ...]' (repeatable); UDF specs "
                  "name it as NAME:FUNCTION(ARG, ...)")
      ->type_size(1)
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run->add_option("-o,--output", options.output,
                  "Output file; its extension picks the format (not needed with "
                  "--output-format noop)");
  run->add_option("--select", arguments.select,
                  "Input columns to keep beside the results, comma-separated "
                  "(default: all; '' for none)");
  run->add_option("--input-format", arguments.input_format,
                  "Input format: parquet, csv, arrow (default: from the extension)");
  run->add_option("--output-format", arguments.output_format,
                  "Output format: parquet, csv, arrow, arrows, noop (default: from the "
                  "extension)");
  run->add_option("--batch-rows", options.batch_rows, "Most rows per batch sent to a worker")
      ->capture_default_str();
  quiver::cli::AddBatchBytesOption(run, options);
  run->add_option("--workers", options.workers, "Worker processes")->capture_default_str();
  run->add_option("--batch-timeout", options.batch_timeout_seconds,
                  "Seconds a worker has to answer one batch")
      ->capture_default_str();
  run->add_option("--max-in-flight", options.max_in_flight,
                  "Batches sent to one worker and not yet answered")
      ->capture_default_str();
  run->add_option("--input-mode", options.input_mode,
                  "columnar: send plain columns from their own buffers; rows: turn every "
                  "batch into engine rows and back first, as an engine without columnar "
                  "input does (for comparisons)")
      ->check(CLI::IsMember({"columnar", "rows"}))
      ->capture_default_str();
  run->add_option("--transport", options.transport, "How workers are reached: " + TransportHelp())
      ->check(CLI::IsMember(quiver::transport::OfferedTransportNames()))
      ->capture_default_str();
  run->add_option("--python", options.python,
                  "Python that runs the workers (`PYTHON -m quiver.worker`); default: "
                  "$QUIVER_PYTHON, else the build's Python, else python3");
  quiver::cli::AddClassEnvOptions(run, &options);
  run->add_flag("-q,--quiet", options.quiet, "Print no summary (errors still go to stderr)");
  run->add_flag("-v,--verbose", options.verbose,
                "The summary's metrics table shows every worker, not only every UDF");
  run->add_option("--metrics", options.metrics_file,
                  "Write every metric of the run (docs/metrics.md) to FILE as JSON");
  run->add_option("--otlp-endpoint", options.otlp_endpoint,
                  "Post the run's metrics and spans (the run, each worker start), when it ends, "
                  "to the OpenTelemetry collector at URL (OTLP/HTTP, e.g. "
                  "http://localhost:4318); one that does not answer is said, the run still "
                  "succeeds");
  run->add_option("--trace-batches", options.trace_batches,
                  "With --otlp-endpoint: the share of batches, 0 to 1, posted as spans of "
                  "their own (index, rows, bytes, worker, its time on the batch); 0.01 traces "
                  "one batch in a hundred, evenly spread")
      ->capture_default_str();
  run->add_flag("--traceback-locals", options.traceback_locals,
                "A UDF error shows the local variables of its failing frame (each repr cut to "
                "200 characters), so the bad row is visible");
  quiver::cli::AddLogDirOption(run, &options);
  quiver::cli::AddKindOptions(run, &options.kinds);
  run->add_flag("--force", options.force,
                "Allow OUTPUT to be the INPUT file (replaced only once the run succeeded)");
  quiver::cli::AddForkServerOptions(run, options);
  quiver::cli::AddResourceLimitOptions(run, &options);
  quiver::cli::AddSandboxOptions(run, &options);
  return run;
}

// Fills the options CLI11 could not bind directly.
void FinishRunOptions(CLI::App* run, RunArguments& arguments) {
  auto& options = arguments.options;
  if (run->count("--input-format") > 0) options.input_format = arguments.input_format;
  if (run->count("--output-format") > 0) options.output_format = arguments.output_format;
  if (run->count("--select") > 0) options.select = arguments.select;
  if (run->count("--python") == 0) options.python = quiver::cli::DefaultPython();
}

int ReportFailure(const arrow::Status& status) {
  const int signal_number = quiver::cli::InterruptSignal();
  if (status.IsCancelled() && signal_number != 0) {
    std::fprintf(stderr, "quiver: %s\n", status.message().c_str());
    return 128 + signal_number;
  }
  std::fprintf(stderr, "quiver: error: %s\n", quiver::cli::FailureMessage(status).c_str());
  if (quiver::cli::IsUsageError(status)) {
    std::fprintf(stderr, "Run 'quiver run --help' for usage.\n");
    return kExitUsage;
  }
  return kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(kDescription, "quiver");
  app.footer(kMainFooter);
  app.set_version_flag("--version", VersionText());
  app.require_subcommand(1);
  RunArguments arguments;
  CLI::App* run = AddRunCommand(app, arguments);
  quiver::cli::RayOptions ray_options;
  quiver::cli::AddRayOptions(run, ray_options);
  quiver::cli::ConformanceArguments conformance_arguments;
  CLI::App* conformance = quiver::cli::AddConformanceCommand(app, conformance_arguments);
  quiver::cli::LogsArguments logs_arguments;
  CLI::App* logs = quiver::cli::AddLogsCommand(app, logs_arguments);
  quiver::cli::TopArguments top_arguments;
  CLI::App* top = quiver::cli::AddTopCommand(app, top_arguments);

  if (argc <= 1) {
    std::fprintf(stderr, "%s", app.help().c_str());
    return kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);  // --help, --version
    std::fprintf(stderr, "quiver: error: %s\nRun '%s --help' for usage.\n", error.what(),
                 run->parsed()           ? "quiver run"
                 : conformance->parsed() ? "quiver conformance"
                 : logs->parsed()        ? "quiver logs"
                 : top->parsed()         ? "quiver top"
                                         : "quiver");
    return kExitUsage;
  }
  // A worker that dies while we write to its socket must be an error, not SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  if (conformance->parsed()) return quiver::cli::RunConformanceCommand(conformance_arguments);
  if (logs->parsed()) return quiver::cli::RunLogsCommand(logs_arguments);
  if (top->parsed()) return quiver::cli::RunTopCommand(top_arguments);
  FinishRunOptions(run, arguments);

  // Arrow 26 keeps its compute kernels (which CSV reading and argument
  // expressions use) in a library that must register them once.
  auto status = arrow::compute::Initialize();
  if (!status.ok()) return ReportFailure(status);
  if (!ray_options.address.empty()) {
    return ReportFailure(quiver::cli::RunOnRay(arguments.options, ray_options));
  }
  quiver::cli::InstallInterruptHandlers();

  status = quiver::cli::RunCommand(arguments.options);
  if (!status.ok()) return ReportFailure(status);
  return 0;
}
