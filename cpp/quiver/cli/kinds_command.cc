// `quiver run` for the grouped and table kinds (kind_options.h).

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>

#include "quiver/cli/file_format.h"
#include "quiver/cli/interrupt.h"
#include "quiver/cli/kind_options.h"
#include "quiver/cli/metrics_report.h"
#include "quiver/cli/otlp_export.h"
#include "quiver/cli/output_file.h"
#include "quiver/cli/progress.h"
#include "quiver/cli/python_envs.h"
#include "quiver/cli/python_interpreter.h"
#include "quiver/cli/run_command.h"
#include "quiver/cli/run_status.h"
#include "quiver/cli/udf_spec.h"
#include "quiver/cli/usage_error.h"
#include "quiver/exec/grouped/grouped_agg.h"
#include "quiver/exec/grouped/grouped_map.h"
#include "quiver/exec/grouped/table_function.h"
#include "quiver/exec/udf_operator.h"
#include "quiver/input/input_file.h"
#include "quiver/worker/worker_activity.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_spec.h"

namespace quiver::cli {
namespace {

using Clock = std::chrono::steady_clock;
using exec::grouped::BatchSink;

// The shape of a kind's command line; its numbers are exec's to check.
arrow::Status CheckKindCommand(const RunOptions& options) {
  const KindOptions& kinds = options.kinds;
  const int chosen =
      (kinds.apply.empty() ? 0 : 1) + (kinds.aggs.empty() ? 0 : 1) + (kinds.udtf.empty() ? 0 : 1);
  if (!options.udf_specs.empty() || !options.runtime_specs.empty()) {
    return UsageError(
        "--udf and --runtime cannot be combined with --apply, --agg or --udtf; run them "
        "separately");
  }
  if (chosen != 1) {
    return UsageError("give exactly one of --apply, --agg (repeatable) or --udtf");
  }
  if (!kinds.udtf.empty() && !kinds.group_by.empty()) {
    return UsageError("--udtf takes no --group-by (a table function sees one row at a time)");
  }
  if (kinds.udtf.empty() && kinds.group_by.empty()) {
    return UsageError(std::string(kinds.apply.empty() ? "--agg" : "--apply") +
                      " needs --group-by KEY[,KEY...]");
  }
  if (kinds.udtf.empty() && options.select) {
    return UsageError("--select applies to --udtf; the output of --apply and --agg is their own");
  }
  if (options.input_mode != "columnar") {
    return UsageError("--input-mode rows applies to --udf only");
  }
  return arrow::Status::OK();
}

arrow::Result<std::unique_ptr<worker::WorkerDispatcher>> MakePythonDispatcher(
    const RunOptions& options, const std::string& python) {
  ARROW_ASSIGN_OR_RAISE(worker::WorkerSpec spec,
                        WorkerPoolSpec(options, worker::PythonWorkerCommand(python)));
  return worker::WorkerDispatcher::Make(std::move(spec));
}

// --apply takes 'PATH.py:FUNCTION' (no arguments: the function gets whole
// groups); the function's name names it in errors.
arrow::Result<exec::UdfCall> ParseApply(const std::string& text, const std::filesystem::path& cwd) {
  const auto colon = text.rfind(':');
  std::string name = colon == std::string::npos ? "apply" : text.substr(colon + 1);
  if (name.empty() || name.find_first_of(" ()`'") != std::string::npos) name = "apply";
  if (text.find('(') != std::string::npos) {
    return UsageError(
        "--apply takes 'PATH.py:FUNCTION' without arguments (the function gets "
        "all columns of each group), not '" +
        text + "'");
  }
  return ParseUdfSpec("`" + name + "`=" + text + "()", cwd);
}

// The interpreter of a kind's workers: that of the environment its functions'
// requirements= (or --requirements) need, which must be one for the run.
arrow::Result<std::string> KindPython(const RunOptions& options,
                                      std::vector<exec::UdfCall>* calls) {
  ARROW_ASSIGN_OR_RAISE(
      auto environments,
      AssignPythonEnvironments({options.python, options.requirements_file, options.quiet}, calls));
  const std::string& runtime = calls->front().runtime;
  for (const auto& call : *calls) {
    if (call.runtime != runtime) {
      return UsageError("the functions of one run declare different requirements= ('" +
                        calls->front().name + "' and '" + call.name +
                        "'); run them in separate runs");
    }
  }
  auto environment = environments.find(runtime);
  return environment == environments.end() ? options.python : environment->second;
}

arrow::Status Interrupted() {
  return arrow::Status::Cancelled("interrupted by signal ", InterruptSignal(),
                                  "; no output was written");
}

// Writes every batch a kind hands out, stopping when interrupted; the rows
// written go to `rows_written` too, for quiver top (run_status.h).
BatchSink Writer(OutputFile* output, RunSummary* summary, std::atomic<int64_t>* rows_written) {
  return
      [output, summary, rows_written](std::shared_ptr<arrow::RecordBatch> batch) -> arrow::Status {
        if (InterruptSignal() != 0) return Interrupted();
        const auto start = Clock::now();
        ARROW_RETURN_NOT_OK(output->Write(batch));
        summary->write_time += Clock::now() - start;
        summary->rows += batch->num_rows();
        rows_written->store(summary->rows, std::memory_order_relaxed);
        summary->batches += 1;
        return arrow::Status::OK();
      };
}

template <typename Run>
arrow::Status WriteRun(Run* run, const RunOptions& options, FileFormat format,
                       InterruptWatchdog* watchdog, RunSummary* summary,
                       std::atomic<int64_t>* rows_written) {
  ARROW_ASSIGN_OR_RAISE(auto output, OutputFile::Open(options.output, format, run->schema()));
  watchdog->SetCleanupPath(output->temporary_path());
  ARROW_RETURN_NOT_OK(run->Run(Writer(output.get(), summary, rows_written)));
  ARROW_RETURN_NOT_OK(output->Commit());
  watchdog->SetCleanupPath("");
  summary->output = output->path();
  return arrow::Status::OK();
}

// Aggregates know their output schema once they ran; their output (a row per
// group) is held, then written.
arrow::Status WriteAggregates(exec::grouped::GroupedAggRun* run, const RunOptions& options,
                              FileFormat format, InterruptWatchdog* watchdog, RunSummary* summary,
                              std::atomic<int64_t>* rows_written) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  ARROW_RETURN_NOT_OK(run->Run([&](std::shared_ptr<arrow::RecordBatch> batch) {
    if (InterruptSignal() != 0) return Interrupted();
    batches.push_back(std::move(batch));
    return arrow::Status::OK();
  }));
  ARROW_ASSIGN_OR_RAISE(auto output, OutputFile::Open(options.output, format, run->schema()));
  watchdog->SetCleanupPath(output->temporary_path());
  auto write = Writer(output.get(), summary, rows_written);
  for (auto& batch : batches) ARROW_RETURN_NOT_OK(write(std::move(batch)));
  ARROW_RETURN_NOT_OK(output->Commit());
  watchdog->SetCleanupPath("");
  summary->output = output->path();
  return arrow::Status::OK();
}

// What exec's checks call the options: this command's flags.
exec::OptionNames KindFlagNames() {
  exec::OptionNames names;
  names.batch_rows = "--batch-rows";
  names.workers = "--workers";
  names.max_in_flight = "--max-in-flight";
  return names;
}

// The figures of a kind's run as the scalar kinds give theirs (docs/metrics.md):
// the input's rows, batches and bytes, and each step's workers.
exec::UdfRunMetrics RunMetricsOf(const exec::grouped::KindMetrics& metrics) {
  exec::UdfRunMetrics figures;
  figures.rows = metrics.rows_in;
  figures.batches = metrics.batches_in;
  figures.bytes_in = metrics.bytes_in;
  figures.worker_udf_time = std::chrono::nanoseconds(metrics.worker_udf_nanos);
  figures.read_time = std::chrono::nanoseconds(metrics.read_nanos);
  figures.groups = metrics.groups;
  return figures;
}

}  // namespace

arrow::Status RunKindCommand(const RunOptions& options) {
  const auto start = Clock::now();
  const auto started = std::chrono::system_clock::now();  // the exported figures' start
  ARROW_RETURN_NOT_OK(CheckKindCommand(options));
  const KindOptions& kinds = options.kinds;
  ARROW_ASSIGN_OR_RAISE(auto input_format, ResolveInputFormat(options.input, options.input_format));
  ARROW_ASSIGN_OR_RAISE(auto output_format,
                        ResolveOutputFormat(options.output, options.output_format));
  if (output_format != FileFormat::kNoop) {
    if (options.output.empty()) {
      return UsageError("no output given; add -o OUTPUT (or --output-format noop)");
    }
    ARROW_RETURN_NOT_OK(CheckOutputDirectory(options.output));
    auto same = CheckOutputIsNotInput(options.input, options.output, options.force);
    if (!same.ok()) return UsageError(same.message());
  }
  const auto cwd = std::filesystem::current_path();
  exec::grouped::KindOptions exec_options;
  if (!kinds.group_by.empty()) {
    ARROW_ASSIGN_OR_RAISE(exec_options.group_by, ParseColumnList(kinds.group_by));
    if (exec_options.group_by.empty()) return UsageError("--group-by names no column");
  }
  exec_options.batch_rows = options.batch_rows;
  exec_options.max_group_bytes = kinds.max_group_bytes;
  exec_options.max_group_bytes_label = "--max-group-bytes";
  exec_options.workers = options.workers;
  exec_options.max_batches_in_flight_per_worker = options.max_in_flight;
  auto numbers = exec::grouped::CheckKindOptions(exec_options, KindFlagNames());
  if (!numbers.ok()) return UsageError(numbers.message());
  std::vector<exec::UdfCall> calls;
  if (!kinds.apply.empty()) {
    ARROW_ASSIGN_OR_RAISE(auto call, ParseApply(kinds.apply, cwd));
    calls.push_back(std::move(call));
  }
  for (const auto& spec : kinds.aggs) {
    ARROW_ASSIGN_OR_RAISE(auto call, ParseUdfSpec(spec, cwd));
    calls.push_back(std::move(call));
  }
  if (!kinds.udtf.empty()) {
    ARROW_ASSIGN_OR_RAISE(auto call, ParseUdfSpec(kinds.udtf, cwd));
    calls.push_back(std::move(call));
  }
  std::optional<std::vector<std::string>> pass_through;
  if (options.select) {
    ARROW_ASSIGN_OR_RAISE(pass_through, ParseColumnList(*options.select));
  }
  ARROW_RETURN_NOT_OK(CheckPythonInterpreter(options.python));
  ARROW_ASSIGN_OR_RAISE(const std::string python, KindPython(options, &calls));

  InterruptWatchdog watchdog(std::chrono::seconds(3));
  ARROW_ASSIGN_OR_RAISE(input::InputFile input,
                        input::OpenInputFile(options.input, input_format, options.batch_rows));
  // A misspelled column costs no worker start, and exits 2 like any bad command line.
  auto columns =
      exec::grouped::CheckKindColumns(calls, exec_options, *input.file_schema, kinds.udtf.empty());
  if (columns.ok() && pass_through) {
    columns = exec::grouped::ResolveColumns(*input.file_schema, *pass_through, "--select").status();
  }
  if (!columns.ok()) return UsageError(columns.message());
  ARROW_ASSIGN_OR_RAISE(auto dispatcher, MakePythonDispatcher(options, python));
  watchdog.AddCleanupDirectory(dispatcher->private_directory());
  RunSummary summary;
  // quiver top reads what the run does from its private directory (run_status.h);
  // the input's bytes are known once the run ended.
  std::atomic<int64_t> rows_written{0};
  std::vector<std::string> names;
  for (const auto& call : calls) names.push_back(call.name);
  auto status = std::make_unique<RunStatusPublisher>(
      dispatcher->private_directory(), RunIdentity{::getpid(), options.input, names}, [&] {
        return ProgressFigures{rows_written.load(std::memory_order_relaxed), input.total_rows, 0,
                               Clock::now() - start, worker::WorkerActivity::Snapshot()};
      });
  exec::grouped::KindMetrics metrics;
  if (!kinds.apply.empty()) {
    ARROW_ASSIGN_OR_RAISE(
        auto run, exec::grouped::GroupedMapRun::Start(dispatcher.get(), calls.front(), exec_options,
                                                      input.reader));
    ARROW_RETURN_NOT_OK(
        WriteRun(run.get(), options, output_format, &watchdog, &summary, &rows_written));
    metrics = run->metrics();
  } else if (!kinds.aggs.empty()) {
    ARROW_ASSIGN_OR_RAISE(auto run, exec::grouped::GroupedAggRun::Start(
                                        dispatcher.get(), calls, exec_options, input.reader));
    ARROW_RETURN_NOT_OK(
        WriteAggregates(run.get(), options, output_format, &watchdog, &summary, &rows_written));
    metrics = run->metrics();
  } else {
    ARROW_ASSIGN_OR_RAISE(auto run, exec::grouped::TableFunctionRun::Start(
                                        dispatcher.get(), calls.front(), pass_through, "--select",
                                        exec_options, input.reader));
    ARROW_RETURN_NOT_OK(
        WriteRun(run.get(), options, output_format, &watchdog, &summary, &rows_written));
    metrics = run->metrics();
  }
  status.reset();  // its last status says the run is final
  summary.bytes = metrics.bytes_in;
  summary.worker_udf_time = std::chrono::nanoseconds(metrics.worker_udf_nanos);
  summary.elapsed = Clock::now() - start;
  summary.workers = options.workers;
  const exec::UdfRunMetrics run_metrics = RunMetricsOf(metrics);
  if (!options.quiet) {
    std::fputs(FormatSummary(summary).c_str(), stderr);
    std::fputs(FormatMetricsTable(run_metrics, options.verbose).c_str(), stderr);
  }
  const EngineTimes engine{summary.elapsed, run_metrics.read_time, summary.write_time};
  if (!options.otlp_endpoint.empty()) {
    ExportRunMetrics(options.otlp_endpoint, run_metrics, engine, started);
  }
  if (options.metrics_file.empty()) return arrow::Status::OK();
  return WriteMetricsFile(options.metrics_file, MetricsJson(run_metrics, engine));
}

}  // namespace quiver::cli
