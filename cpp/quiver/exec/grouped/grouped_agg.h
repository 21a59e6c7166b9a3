#pragma once

// Grouped aggregates (UDAFs): one value per group and UDAF.
//
// A simple UDAF (a function of a group's columns) gets whole groups. A
// partial-form UDAF (init/update/merge/finish) is run in two steps: each
// worker turns pieces of groups (the groups of one input batch) into states;
// then the engine regroups the states by key, ordered by the worker that made
// them, and a worker merges and finishes them (docs/protocol.md, section 9).

#include <memory>
#include <string>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include "quiver/exec/grouped/grouping.h"
#include "quiver/exec/grouped/kinds.h"
#include "quiver/exec/udf_call.h"

namespace quiver::exec::grouped {

/// Field metadata key of a result field in the InitResponse of GROUPED_AGG:
/// "partial" marks a partial-form UDAF, whose answers are states (binary).
inline constexpr char kAggFormKey[] = "quiver.agg_form";

/// One grouped-aggregate run over one input.
class GroupedAggRun {
 public:
  /// Starts the workers; they load every UDAF and say its form. UDAF
  /// arguments must be plain columns; all UDAFs of a run must have one form.
  static arrow::Result<std::unique_ptr<GroupedAggRun>> Start(
      worker::WorkerDispatcher* dispatcher, std::vector<UdfCall> udafs, KindOptions options,
      std::shared_ptr<arrow::RecordBatchReader> input);
  ~GroupedAggRun();

  /// Runs the aggregates; hands `sink` the key columns and one column per
  /// UDAF, one row per group in order of each group's first row. The output
  /// schema is known once Run returned (schema()).
  arrow::Status Run(const BatchSink& sink);

  /// The output schema: keys, then one field per UDAF (after Run).
  std::shared_ptr<arrow::Schema> schema() const { return output_schema_; }

  /// Whether the UDAFs are of the partial form.
  bool partial() const { return partial_; }

  const KindMetrics& metrics() const { return metrics_; }

 private:
  GroupedAggRun() = default;
  arrow::Status RunSimple(const BatchSink& sink);
  arrow::Status RunPartial(const BatchSink& sink);
  arrow::Status MergeStates(
      const std::vector<std::vector<std::shared_ptr<arrow::RecordBatch>>>& states_by_worker,
      const BatchSink& sink);
  // Sends `batch`'s groups (its `columns`, cut by `batching`) to the workers
  // and hands `sink` one row per group: the keys and a value per UDAF. The
  // workers' figures are recorded under the UDAFs' names followed by `step`.
  arrow::Status AggregateGroups(const arrow::RecordBatch& batch, const Grouping& grouping,
                                const std::vector<int>& columns,
                                const GroupedBatchOptions& batching, const std::string& step,
                                const BatchSink& sink);
  arrow::Status SetOutputSchema(const arrow::Schema& keys, const arrow::Schema& values);
  arrow::Status Emit(const std::shared_ptr<arrow::RecordBatch>& keys,
                     const std::shared_ptr<arrow::RecordBatch>& values, const BatchSink& sink);

  worker::WorkerDispatcher* dispatcher_ = nullptr;
  std::vector<UdfCall> udafs_;
  KindOptions options_;
  std::shared_ptr<arrow::RecordBatchReader> input_;
  std::vector<int> keys_;
  std::vector<int> arguments_;  // input columns sent, in order
  std::unique_ptr<WorkerPipeline> pipeline_;
  bool partial_ = false;
  std::shared_ptr<arrow::Schema> output_schema_;
  KindMetrics metrics_;
};

}  // namespace quiver::exec::grouped
