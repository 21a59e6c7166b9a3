#include "quiver/cli/run_command.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include <arrow/record_batch.h>
#include <arrow/result.h>

#include "quiver/cli/file_format.h"
#include "quiver/cli/fork_server_options.h"
#include "quiver/cli/interrupt.h"
#include "quiver/cli/log_dir_option.h"
#include "quiver/cli/metrics_report.h"
#include "quiver/cli/otlp_export.h"
#include "quiver/cli/output_file.h"
#include "quiver/cli/progress.h"
#include "quiver/cli/python_envs.h"
#include "quiver/cli/python_interpreter.h"
#include "quiver/cli/resource_limit_options.h"
#include "quiver/cli/row_errors.h"
#include "quiver/cli/run_status.h"
#include "quiver/cli/runtime_spec.h"
#include "quiver/cli/sandbox_options.h"
#include "quiver/cli/udf_args.h"
#include "quiver/cli/udf_options.h"
#include "quiver/cli/udf_spec.h"
#include "quiver/cli/usage_error.h"
#include "quiver/exec/argument_plan.h"
#include "quiver/exec/udf_checks.h"
#include "quiver/exec/udf_operator.h"
#include "quiver/input/input_file.h"
#include "quiver/input/input_files.h"
#include "quiver/worker/worker_activity.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_spec.h"

namespace quiver::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Time a run has after Ctrl-C to stop by itself before the watchdog ends it.
constexpr auto kInterruptGrace = std::chrono::seconds(3);

// What the command line asks for, parsed and checked before any file is opened.
struct RunPlan {
  FileFormat input_format;
  FileFormat output_format;
  std::vector<exec::UdfCall> calls;
  std::optional<std::vector<std::string>> pass_through;
  /// The runtimes the UDFs use, by name ("py" has no entry: it is the Python worker).
  std::map<std::string, RuntimeSpec> runtimes;
  bool uses_python = false;
};

// The numbers are exec's to check; this command names them by its flags.
arrow::Status CheckNumbers(const RunOptions& options) {
  exec::OptionNames flags;
  flags.workers = "--workers";
  flags.max_in_flight = "--max-in-flight";
  flags.batch_rows = "--batch-rows";
  flags.max_batch_bytes = "--batch-bytes";
  exec::UdfOperatorOptions numbers;
  numbers.workers = options.workers;
  numbers.max_batches_in_flight_per_worker = options.max_in_flight;
  numbers.max_batch_bytes = options.batch_bytes;
  arrow::Status checked = exec::CheckAtLeastOne(flags.batch_rows, options.batch_rows);
  if (checked.ok()) checked = exec::CheckOperatorNumbers(numbers, flags);
  if (!checked.ok()) return UsageError(checked.message());
  if (!(options.batch_timeout_seconds > 0)) {
    return UsageError("--batch-timeout must be a positive number of seconds");
  }
  if (options.udf_specs.empty()) {
    return UsageError("no --udf given; name at least one, e.g. --udf 'loud=udfs.py:shout(name)'");
  }
  return arrow::Status::OK();
}

arrow::Result<RunPlan> MakePlan(const RunOptions& options) {
  ARROW_RETURN_NOT_OK(CheckNumbers(options));
  RunPlan plan;
  ARROW_ASSIGN_OR_RAISE(plan.input_format, ResolveInputFormat(options.input, options.input_format));
  ARROW_ASSIGN_OR_RAISE(plan.output_format,
                        ResolveOutputFormat(options.output, options.output_format));
  if (plan.output_format != FileFormat::kNoop) {
    if (options.output.empty()) {
      return UsageError("no output given; add -o OUTPUT (or --output-format noop)");
    }
    ARROW_RETURN_NOT_OK(CheckOutputDirectory(options.output));
    auto same = CheckOutputIsNotInput(options.input, options.output, options.force);
    if (!same.ok()) return UsageError(same.message());
  }
  const auto cwd = std::filesystem::current_path();
  std::map<std::string, RuntimeSpec> declared;
  std::set<std::string> names;
  for (const auto& text : options.runtime_specs) {
    ARROW_ASSIGN_OR_RAISE(auto runtime, ParseRuntimeSpec(text, cwd));
    if (!names.insert(runtime.name).second) {
      return UsageError("--runtime '" + runtime.name + "' is declared twice");
    }
    declared[runtime.name] = std::move(runtime);
  }
  for (const auto& spec : options.udf_specs) {
    ARROW_ASSIGN_OR_RAISE(auto call, ParseUdfSpec(spec, cwd, names));
    if (call.runtime == kPythonRuntime) {
      plan.uses_python = true;
    } else {
      plan.runtimes[call.runtime] = declared[call.runtime];
      if (!declared[call.runtime].payload_format.empty()) {
        call.payload_format = declared[call.runtime].payload_format;
      }
    }
    plan.calls.push_back(std::move(call));
  }
  ARROW_RETURN_NOT_OK(ApplyUdfArgs(options.udf_args, &plan.calls));
  ARROW_RETURN_NOT_OK(ApplyUdfOptions(options.udf_options, &plan.calls));
  if (options.select) {
    ARROW_ASSIGN_OR_RAISE(plan.pass_through, ParseColumnList(*options.select));
  }
  if (plan.uses_python) ARROW_RETURN_NOT_OK(CheckPythonInterpreter(options.python));
  return plan;
}

// The part of WorkerPoolSpec that cannot fail.
worker::WorkerSpec BaseWorkerSpec(const RunOptions& options, std::vector<std::string> command) {
  worker::WorkerSpec spec;
  spec.command = std::move(command);
  // A worker runs one UDF call at a time on one core beside the engine: BLAS
  // thread pools (numpy's OpenBLAS) would only spin and take the engine's CPU.
  // The variables must be set before Python starts; a user's own setting wins.
  for (const char* variable : {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"}) {
    if (std::getenv(variable) == nullptr) spec.environment[variable] = "1";
  }
  // Read by the Python worker when it formats a UDF's error (traceback_locals.py).
  if (options.traceback_locals) spec.environment["QUIVER_TRACEBACK_LOCALS"] = "1";
  spec.transport = options.transport;  // any name the registry knows, aliases included
  // Clamped so that "wait for ever" values such as 1e300 do not overflow.
  const double seconds = std::min(options.batch_timeout_seconds, 1e9);
  spec.batch_timeout = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0 + 0.5));
  // One run per process: keeping idle workers buys nothing.
  spec.max_idle_workers = options.workers;
  return spec;
}

// Makes the pool of one runtime's workers: `command` is the worker program;
// `transport`, when set, the one its runtime declares (spark:); `sandbox`, when
// set, the paths the sandboxed workers of its @quiver.udf(sandbox=...) UDFs read.
arrow::Result<std::unique_ptr<worker::WorkerDispatcher>> MakeDispatcher(
    const RunOptions& options, std::vector<std::string> command, const std::string& transport = "",
    const std::optional<UdfSandbox>& sandbox = std::nullopt) {
  ARROW_ASSIGN_OR_RAISE(worker::WorkerSpec spec, WorkerPoolSpec(options, std::move(command)));
  if (!transport.empty()) spec.transport = transport;
  if (sandbox) ARROW_RETURN_NOT_OK(ApplyUdfSandbox(options, *sandbox, &spec));
  return worker::WorkerDispatcher::Make(std::move(spec));
}

// How to read the input: only the columns the run uses, as a run over
// --workers workers reads (input::RunReadOptions).
input::InputReadOptions ReadOptionsOf(const RunOptions& options, const RunPlan& plan) {
  input::InputReadOptions read = input::RunReadOptions(options.workers);
  read.batch_rows = options.batch_rows;
  read.batch_bytes = options.batch_bytes;
  read.columns = input::NeededColumns(plan.calls, plan.pass_through);
  return read;
}

arrow::Status Interrupted() {
  const int signal_number = InterruptSignal();
  const std::string name = signal_number == SIGINT    ? "SIGINT"
                           : signal_number == SIGTERM ? "SIGTERM"
                                                      : "signal " + std::to_string(signal_number);
  return arrow::Status::Cancelled("interrupted by ", name, "; no output was written");
}

// Reads every batch of `run` into `output`, drawing progress on the way.
arrow::Status Drain(exec::UdfRun* run, OutputFile* output, std::optional<int64_t> total_rows,
                    Clock::time_point start, ProgressDisplay& progress, RunSummary* summary,
                    std::atomic<int64_t>* rows_written) {
  while (true) {
    if (InterruptSignal() != 0) {
      progress.Clear();
      return Interrupted();
    }
    std::shared_ptr<arrow::RecordBatch> batch;
    auto status = run->ReadNext(&batch);
    if (!status.ok()) {
      progress.Clear();
      return InterruptSignal() != 0 ? Interrupted() : status;
    }
    if (batch == nullptr) break;
    const auto writing_since = Clock::now();
    ARROW_RETURN_NOT_OK(output->Write(batch));
    summary->write_time += Clock::now() - writing_since;
    CountFailedRows(*batch, &summary->failed_rows);
    summary->rows += batch->num_rows();
    rows_written->store(summary->rows, std::memory_order_relaxed);  // for quiver top
    summary->batches += 1;
    const auto now = Clock::now();
    if (progress.Due(now)) {
      progress.Update({summary->rows, total_rows, run->metrics().bytes_in, now - start,
                       worker::WorkerActivity::Snapshot()},
                      now);
    }
  }
  progress.Clear();
  progress.Finish({summary->rows, total_rows, run->metrics().bytes_in, Clock::now() - start,
                   worker::WorkerActivity::Snapshot()});
  return InterruptSignal() != 0 ? Interrupted() : arrow::Status::OK();
}

}  // namespace

arrow::Result<worker::WorkerSpec> WorkerPoolSpec(const RunOptions& options,
                                                 std::vector<std::string> command) {
  worker::WorkerSpec spec = BaseWorkerSpec(options, std::move(command));
  ApplyForkServerOptions(options, spec.command, &spec);
  ARROW_RETURN_NOT_OK(ApplySandboxOptions(options, &spec));
  ARROW_RETURN_NOT_OK(ApplyWorkerMemory(options, &spec));
  spec.log_dir = options.log_dir;
  spec.trace_batches = options.trace_batches;
  return spec;
}

arrow::Status RunCommand(const RunOptions& options) {
  if (!options.metrics_file.empty()) {
    auto writable = CheckMetricsPath(options.metrics_file);
    if (!writable.ok()) return UsageError(writable.message());
  }
  if (!options.otlp_endpoint.empty()) {
    ARROW_RETURN_NOT_OK(CheckOtlpEndpoint(options.otlp_endpoint));
  }
  ARROW_RETURN_NOT_OK(CheckTraceBatches(options.trace_batches, options.otlp_endpoint));
  if (!options.log_dir.empty()) ARROW_RETURN_NOT_OK(PrepareLogDir(options.log_dir));
  if (options.kinds.Active()) return RunKindCommand(options);
  const auto start = Clock::now();
  const auto started = std::chrono::system_clock::now();  // the exported figures' start
  ARROW_ASSIGN_OR_RAISE(RunPlan plan, MakePlan(options));
  InterruptWatchdog watchdog(kInterruptGrace);
  ARROW_ASSIGN_OR_RAISE(
      input::InputFile input,
      input::OpenInputFile(options.input, plan.input_format, ReadOptionsOf(options, plan)));
  exec::UdfOperatorOptions operator_options;
  operator_options.udfs = plan.calls;
  operator_options.pass_through = plan.pass_through;
  operator_options.pass_through_label = "--select";
  operator_options.workers = options.workers;
  operator_options.max_batches_in_flight_per_worker = options.max_in_flight;
  operator_options.max_batch_bytes = options.batch_bytes;
  ARROW_RETURN_NOT_OK(ApplyInFlightBytes(options, &operator_options));
  operator_options.input_mode =
      options.input_mode == "rows" ? exec::InputMode::kRows : exec::InputMode::kColumnar;
  // Checked before anything is set up, so a typo costs no worker start; a bad
  // name is a bad command line (exit 2).
  auto checked = exec::CheckUdfCalls(operator_options, *input.file_schema);
  if (!checked.ok()) return UsageError(checked.message());

  // Python UDFs with requirements or a sandbox of their own run on runtimes of
  // their own ("py@ENV", "py+sandbox").
  SandboxedRuntimes sandboxed;
  ARROW_ASSIGN_OR_RAISE(
      auto environments,
      AssignPythonEnvironments({options.python, options.requirements_file, options.quiet},
                               &operator_options.udfs, &sandboxed));
  plan.uses_python = std::any_of(operator_options.udfs.begin(), operator_options.udfs.end(),
                                 [](const auto& call) { return call.runtime == kPythonRuntime; });
  for (const auto& [name, python] : environments) {
    auto sandbox = sandboxed.find(name);
    plan.runtimes[name] = {
        name, worker::PythonWorkerCommand(python), "", "",
        sandbox == sandboxed.end() ? std::nullopt : std::optional<UdfSandbox>(sandbox->second)};
  }

  // One pool per runtime; Python alone keeps the single-pool operator.
  std::vector<std::unique_ptr<worker::WorkerDispatcher>> dispatchers;
  exec::RuntimeDispatchers by_runtime;
  if (plan.uses_python) {
    ARROW_ASSIGN_OR_RAISE(auto python,
                          MakeDispatcher(options, worker::PythonWorkerCommand(options.python)));
    watchdog.AddCleanupDirectory(python->private_directory());
    by_runtime[kPythonRuntime] = python.get();
    dispatchers.push_back(std::move(python));
  }
  for (const auto& [name, runtime] : plan.runtimes) {
    ARROW_ASSIGN_OR_RAISE(auto dispatcher, MakeDispatcher(options, runtime.command,
                                                          runtime.transport, runtime.sandbox));
    watchdog.AddCleanupDirectory(dispatcher->private_directory());
    by_runtime[name] = dispatcher.get();
    dispatchers.push_back(std::move(dispatcher));
  }
  std::unique_ptr<exec::UdfOperator> udf_operator;
  if (plan.runtimes.empty() && plan.uses_python) {
    ARROW_ASSIGN_OR_RAISE(udf_operator, exec::UdfOperator::Make(dispatchers.front().get(),
                                                                std::move(operator_options)));
  } else {
    ARROW_ASSIGN_OR_RAISE(udf_operator,
                          exec::UdfOperator::Make(by_runtime, std::move(operator_options)));
  }
  ARROW_ASSIGN_OR_RAISE(auto run, udf_operator->Execute(input.reader));
  if (InterruptSignal() != 0) return Interrupted();

  ARROW_ASSIGN_OR_RAISE(auto output,
                        OutputFile::Open(options.output, plan.output_format, run->schema()));
  watchdog.SetCleanupPath(output->temporary_path());
  RunSummary summary;
  std::vector<std::string> udf_names;
  for (const auto& call : plan.calls) udf_names.push_back(call.name);
  summary.failed_rows = ErrorColumns(*run->schema(), udf_names);
  const bool json_progress = options.progress == "json";
  // The line and the live view are drawn on terminals only; JSON goes anywhere.
  const bool show_progress =
      json_progress || (options.progress == "live" && ::isatty(STDERR_FILENO)) ||
      (options.progress == "auto" && !options.quiet && ::isatty(STDERR_FILENO));
  ProgressDisplay progress(stderr, show_progress,
                           json_progress                ? ProgressMode::kJson
                           : options.progress == "live" ? ProgressMode::kLive
                                                        : ProgressMode::kLine);
  // quiver top reads what the run does from its private directory (run_status.h).
  std::atomic<int64_t> rows_written{0};
  auto status = std::make_unique<RunStatusPublisher>(
      dispatchers.front()->private_directory(), RunIdentity{::getpid(), options.input, udf_names},
      [&] {
        return ProgressFigures{rows_written.load(std::memory_order_relaxed), input.total_rows,
                               run->metrics().bytes_in, Clock::now() - start,
                               worker::WorkerActivity::Snapshot()};
      });
  ARROW_RETURN_NOT_OK(
      Drain(run.get(), output.get(), input.total_rows, start, progress, &summary, &rows_written));
  ARROW_RETURN_NOT_OK(output->Commit());
  status.reset();  // its last status says the run is final
  watchdog.SetCleanupPath("");

  const auto metrics = run->metrics();
  summary.bytes = metrics.bytes_in;
  summary.worker_udf_time = metrics.worker_udf_time;
  summary.elapsed = Clock::now() - start;
  summary.workers = options.workers;
  summary.output = output->path();
  if (!options.quiet) {
    std::fputs(FormatSummary(summary).c_str(), stderr);
    std::fputs(FormatMetricsTable(metrics, options.verbose).c_str(), stderr);
  }
  if (!options.otlp_endpoint.empty()) {
    ExportRunMetrics(options.otlp_endpoint, metrics,
                     {summary.elapsed, metrics.read_time, summary.write_time}, started);
  }
  if (options.metrics_file.empty()) return arrow::Status::OK();
  return WriteMetricsFile(
      options.metrics_file,
      MetricsJson(metrics, {summary.elapsed, metrics.read_time, summary.write_time}));
}

}  // namespace quiver::cli
