#pragma once

// What the grouped and table kinds share: their options and the checks of
// them, starting their workers, and reading an input whole.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "quiver/exec/run_metrics.h"
#include "quiver/exec/udf_call.h"
#include "quiver/exec/worker_pipeline.h"
#include "quiver/v1/quiver.pb.h"

namespace quiver::worker {
class WorkerDispatcher;
}

namespace quiver::exec::grouped {

/// How a grouped or table kind runs.
struct KindOptions {
  /// Key columns (grouped kinds only).
  std::vector<std::string> group_by;
  /// Most rows per batch sent to a worker (whole groups: a larger group goes alone).
  int64_t batch_rows = 65536;
  /// Largest group, in Arrow buffer bytes; a larger one fails the run.
  int64_t max_group_bytes = int64_t{512} << 20;
  /// What the caller calls max_group_bytes in errors.
  std::string max_group_bytes_label = "max_group_bytes";
  int workers = 1;
  int max_batches_in_flight_per_worker = 4;
};

/// Refuses every number of `options` below 1 (none is raised to 1), naming
/// the option as the caller calls it.
arrow::Status CheckKindOptions(const KindOptions& options, const OptionNames& names = {});

/// Receives the output batches of a kind, in order.
using BatchSink = std::function<arrow::Status(std::shared_ptr<arrow::RecordBatch>)>;

/// Figures about one run (docs/metrics.md).
struct KindMetrics {
  int64_t rows_in = 0;
  int64_t batches_in = 0;
  int64_t bytes_in = 0;
  int64_t rows_out = 0;
  /// Time spent reading the input.
  int64_t read_nanos = 0;
  /// Time the workers spent inside UDF calls, summed over workers and steps.
  int64_t worker_udf_nanos = 0;
  /// Each step's UDFs and the figures of the workers that ran them, as the
  /// scalar kinds report them; a partial-form aggregate has two steps (its
  /// states, then their merge).
  std::vector<UdfGroupMetrics> groups;
};

/// Hands `pipeline`'s outstanding answers to `handle` and finishes it (see
/// WorkerPipeline::DrainAndFinish), then records in `metrics` its workers'
/// figures under `udfs`' names, each followed by `step` (e.g. " (merge)"), and
/// their UDF time; the figures are recorded whether or not the step failed.
arrow::Status FinishKind(WorkerPipeline* pipeline, const AnswerHandler& handle,
                         const std::vector<UdfCall>& udfs, const std::string& step,
                         KindMetrics* metrics);

/// Starts the workers of a kind: `udfs` with `eval_type` and their `offsets`
/// into batches of `sent_schema`, as many workers and as deep a window as
/// `options` say; `label` (e.g. "running UDTF 'f'") starts every error.
arrow::Result<std::unique_ptr<WorkerPipeline>> StartKind(
    worker::WorkerDispatcher* dispatcher, const std::vector<UdfCall>& udfs, v1::EvalType eval_type,
    const arrow::Schema& sent_schema, const std::vector<std::vector<int>>& offsets,
    const KindOptions& options, std::string label);

/// Returns the positions of `names` in `schema`; an unknown name is an error
/// that says `what` it was for and suggests the closest column (CheckColumn).
arrow::Result<std::vector<int>> ResolveColumns(const arrow::Schema& schema,
                                               const std::vector<std::string>& names,
                                               const std::string& what);

/// Returns the position of the plain column UDF argument `argument` names;
/// other expressions are refused (the grouped kinds take columns).
arrow::Result<int> ArgumentColumn(const UdfCall& udf, size_t argument, const arrow::Schema& schema);

/// Checks, before any worker starts, that every column a kind's run names is
/// in `schema`: the group keys, and each UDF's arguments (plain column names
/// when `plain_arguments`, as the grouped kinds take; else any expression).
/// Errors suggest the closest column.
arrow::Status CheckKindColumns(const std::vector<UdfCall>& udfs, const KindOptions& options,
                               const arrow::Schema& schema, bool plain_arguments);

/// Names a batch of whole groups in errors: "groups 4-7".
std::string GroupsText(int64_t first_group, int64_t groups);

/// Reads the next batch of `input` (nullptr at its end), counting its rows,
/// bytes and the time spent reading in `metrics`.
arrow::Result<std::shared_ptr<arrow::RecordBatch>> ReadCounted(arrow::RecordBatchReader* input,
                                                               KindMetrics* metrics);

/// Reads every batch of `input` into one batch (the grouped kinds need all
/// rows of a group before they send it), counting rows, batches, bytes and
/// the time spent reading.
arrow::Result<std::shared_ptr<arrow::RecordBatch>> ReadWhole(arrow::RecordBatchReader* input,
                                                             KindMetrics* metrics);

}  // namespace quiver::exec::grouped
