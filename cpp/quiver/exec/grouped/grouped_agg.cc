#include "quiver/exec/grouped/grouped_agg.h"

#include <limits>
#include <map>
#include <utility>

#include <arrow/array/util.h>
#include <arrow/scalar.h>
#include <arrow/table.h>
#include <arrow/type.h>
#include <arrow/util/key_value_metadata.h>

#include "quiver/exec/grouped/grouping.h"
#include "quiver/exec/udf_checks.h"

namespace quiver::exec::grouped {
namespace {

// Name of the column of merge batches saying which worker made a state.
constexpr char kPartitionColumn[] = "__partition";

// What the metrics of the two steps of partial-form UDAFs add to their names:
// each step is a group of its own, with its own rows in and out.
constexpr char kStatesStep[] = " (states)";
constexpr char kMergeStep[] = " (merge)";

bool IsPartial(const arrow::Field& field) {
  if (field.metadata() == nullptr) return false;
  auto form = field.metadata()->Get(kAggFormKey);
  return form.ok() && *form == "partial";
}

GroupedBatchOptions Batching(const KindOptions& options, std::vector<int> keys) {
  GroupedBatchOptions batching;
  batching.batch_rows = options.batch_rows;
  batching.max_group_bytes = options.max_group_bytes;
  batching.limit_label = options.max_group_bytes_label;
  batching.keys = std::move(keys);
  return batching;
}

}  // namespace

GroupedAggRun::~GroupedAggRun() = default;

arrow::Result<std::unique_ptr<GroupedAggRun>> GroupedAggRun::Start(
    worker::WorkerDispatcher* dispatcher, std::vector<UdfCall> udafs, KindOptions options,
    std::shared_ptr<arrow::RecordBatchReader> input) {
  std::unique_ptr<GroupedAggRun> run(new GroupedAggRun());
  const auto& schema = *input->schema();
  if (udafs.empty()) return arrow::Status::Invalid("grouped aggregates need at least one UDAF");
  if (options.group_by.empty()) return arrow::Status::Invalid("aggregates need key columns");
  ARROW_ASSIGN_OR_RAISE(run->keys_, ResolveColumns(schema, options.group_by, "the group keys"));
  // Each argument column is sent once, however many UDAFs take it.
  std::map<int, int> sent;
  std::vector<std::vector<int>> offsets;
  for (const auto& udaf : udafs) {
    offsets.emplace_back();
    for (size_t a = 0; a < udaf.arguments.size(); ++a) {
      ARROW_ASSIGN_OR_RAISE(int column, ArgumentColumn(udaf, a, schema));
      auto [found, added] = sent.emplace(column, static_cast<int>(run->arguments_.size()));
      if (added) run->arguments_.push_back(column);
      offsets.back().push_back(found->second + 1);  // after the group column
    }
  }
  const std::string label = "running aggregates " + QuotedNames(udafs);
  ARROW_ASSIGN_OR_RAISE(
      run->pipeline_, StartKind(dispatcher, udafs, v1::GROUPED_AGG,
                                *GroupedSchema(schema, run->arguments_), offsets, options, label));
  const auto& results = *run->pipeline_->result_schema();
  if (results.num_fields() != static_cast<int>(udafs.size())) {
    return arrow::Status::Invalid(label, ": the workers answered Init with ", results.num_fields(),
                                  " result fields for ", udafs.size(), " UDAFs");
  }
  run->partial_ = IsPartial(*results.field(0));
  for (int i = 0; i < results.num_fields(); ++i) {
    if (IsPartial(*results.field(i)) != run->partial_) {
      return arrow::Status::NotImplemented(
          label, ": UDAFs '", udafs[0].name, "' and '", udafs[i].name,
          "' are of different forms (one simple, one partial); run them in separate runs");
    }
    if (run->partial_ && results.field(i)->type()->id() != arrow::Type::BINARY) {
      return arrow::Status::Invalid(label, ": partial UDAF '", udafs[i].name,
                                    "' must answer with binary states, not ",
                                    results.field(i)->type()->ToString());
    }
  }
  run->dispatcher_ = dispatcher;
  run->udafs_ = std::move(udafs);
  run->options_ = std::move(options);
  run->input_ = std::move(input);
  return run;
}

arrow::Status GroupedAggRun::Run(const BatchSink& sink) {
  return partial_ ? RunPartial(sink) : RunSimple(sink);
}

arrow::Status GroupedAggRun::SetOutputSchema(const arrow::Schema& keys,
                                             const arrow::Schema& values) {
  arrow::FieldVector fields = keys.fields();
  for (int i = 0; i < values.num_fields(); ++i) {
    fields.push_back(arrow::field(udafs_[i].name, values.field(i)->type()));
  }
  output_schema_ = arrow::schema(std::move(fields));
  return arrow::Status::OK();
}

arrow::Status GroupedAggRun::Emit(const std::shared_ptr<arrow::RecordBatch>& keys,
                                  const std::shared_ptr<arrow::RecordBatch>& values,
                                  const BatchSink& sink) {
  arrow::ArrayVector columns = keys->columns();
  for (const auto& column : values->columns()) columns.push_back(column);
  metrics_.rows_out += keys->num_rows();
  return sink(arrow::RecordBatch::Make(output_schema_, keys->num_rows(), std::move(columns)));
}

arrow::Status GroupedAggRun::RunSimple(const BatchSink& sink) {
  ARROW_ASSIGN_OR_RAISE(auto whole, ReadWhole(input_.get(), &metrics_));
  ARROW_ASSIGN_OR_RAISE(Grouping grouping, GroupRows(*whole, keys_));
  return AggregateGroups(*whole, grouping, arguments_, Batching(options_, keys_), "", sink);
}

arrow::Status GroupedAggRun::AggregateGroups(const arrow::RecordBatch& batch,
                                             const Grouping& grouping,
                                             const std::vector<int>& columns,
                                             const GroupedBatchOptions& batching,
                                             const std::string& step, const BatchSink& sink) {
  ARROW_RETURN_NOT_OK(SetOutputSchema(*grouping.keys->schema(), *pipeline_->result_schema()));
  auto take = [&](Answer answer) -> arrow::Status {
    return Emit(grouping.keys->Slice(answer.tag, answer.result->num_rows()), answer.result, sink);
  };
  auto send = [&](std::shared_ptr<arrow::RecordBatch> piece, int64_t first,
                  int64_t groups) -> arrow::Status {
    // One value per group: the worker execution checks the row count.
    return pipeline_->SubmitInTurn(*piece, groups, first, GroupsText(first, groups), take);
  };
  ARROW_RETURN_NOT_OK(ForEachGroupedBatch(batch, grouping, columns, batching, send));
  return FinishKind(pipeline_.get(), take, udafs_, step, &metrics_);
}

arrow::Status GroupedAggRun::RunPartial(const BatchSink& sink) {
  // Step 1: every input batch, grouped on its own, becomes one state per
  // group piece; states are kept apart by the worker that made them.
  std::vector<std::vector<std::shared_ptr<arrow::RecordBatch>>> states(pipeline_->workers());
  std::map<int64_t, std::shared_ptr<arrow::RecordBatch>> piece_keys;  // by tag
  int64_t next_tag = 0;
  auto take = [&](Answer answer) -> arrow::Status {
    auto keys = piece_keys[answer.tag];
    piece_keys.erase(answer.tag);
    const int64_t rows = keys->num_rows();
    arrow::ArrayVector columns = keys->columns();
    ARROW_ASSIGN_OR_RAISE(auto partition,
                          arrow::MakeArrayFromScalar(arrow::Int32Scalar(answer.worker), rows));
    columns.push_back(partition);
    arrow::FieldVector fields = keys->schema()->fields();
    fields.push_back(arrow::field(kPartitionColumn, arrow::int32(), false));
    for (int i = 0; i < answer.result->num_columns(); ++i) {
      columns.push_back(answer.result->column(i));
      fields.push_back(arrow::field("__state_" + std::to_string(i), arrow::binary()));
    }
    states[answer.worker].push_back(
        arrow::RecordBatch::Make(arrow::schema(fields), rows, std::move(columns)));
    return arrow::Status::OK();
  };
  const auto batching = Batching(options_, keys_);
  while (true) {
    ARROW_ASSIGN_OR_RAISE(auto batch, ReadCounted(input_.get(), &metrics_));
    if (batch == nullptr) break;
    ARROW_ASSIGN_OR_RAISE(Grouping grouping, GroupRows(*batch, keys_));
    auto send = [&](std::shared_ptr<arrow::RecordBatch> piece, int64_t first,
                    int64_t groups) -> arrow::Status {
      piece_keys[next_tag] = grouping.keys->Slice(first, groups);
      const int64_t tag = next_tag++;
      return pipeline_->SubmitInTurn(*piece, groups, tag, GroupsText(first, groups), take);
    };
    ARROW_RETURN_NOT_OK(ForEachGroupedBatch(*batch, grouping, arguments_, batching, send));
  }
  ARROW_RETURN_NOT_OK(FinishKind(pipeline_.get(), take, udafs_, kStatesStep, &metrics_));
  pipeline_.reset();  // the workers go back to the dispatcher, warm for step 2
  return MergeStates(states, sink);
}

arrow::Status GroupedAggRun::MergeStates(
    const std::vector<std::vector<std::shared_ptr<arrow::RecordBatch>>>& states_by_worker,
    const BatchSink& sink) {
  // Step 2: the states of each key, ordered by worker, then by input order.
  const int key_count = static_cast<int>(keys_.size());
  arrow::FieldVector fields;
  for (int key : keys_) fields.push_back(input_->schema()->field(key));
  fields.push_back(arrow::field(kPartitionColumn, arrow::int32(), false));
  for (size_t i = 0; i < udafs_.size(); ++i) {
    fields.push_back(arrow::field("__state_" + std::to_string(i), arrow::binary()));
  }
  const auto states_schema = arrow::schema(fields);
  std::vector<std::shared_ptr<arrow::RecordBatch>> ordered;
  for (const auto& batches : states_by_worker) {
    for (const auto& batch : batches) {
      ARROW_ASSIGN_OR_RAISE(auto renamed, batch->ReplaceSchema(states_schema));
      ordered.push_back(std::move(renamed));
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto table, arrow::Table::FromRecordBatches(states_schema, ordered));
  ARROW_ASSIGN_OR_RAISE(auto all_states, table->CombineChunksToBatch());
  std::vector<int> key_positions;
  for (int i = 0; i < key_count; ++i) key_positions.push_back(i);
  std::vector<int> columns;  // the partition, then one state column per UDAF
  std::vector<std::vector<int>> offsets;
  for (size_t i = 0; i <= udafs_.size(); ++i) columns.push_back(key_count + static_cast<int>(i));
  for (size_t i = 0; i < udafs_.size(); ++i) offsets.push_back({1, 2 + static_cast<int>(i)});
  ARROW_ASSIGN_OR_RAISE(
      pipeline_,
      StartKind(dispatcher_, udafs_, v1::GROUPED_AGG_MERGE, *GroupedSchema(*states_schema, columns),
                offsets, options_, "merging the states of aggregates " + QuotedNames(udafs_)));
  if (pipeline_->result_schema()->num_fields() != static_cast<int>(udafs_.size())) {
    return arrow::Status::Invalid("the workers answered the merge Init with ",
                                  pipeline_->result_schema()->num_fields(), " fields for ",
                                  udafs_.size(), " UDAFs");
  }
  ARROW_ASSIGN_OR_RAISE(Grouping grouping, GroupRows(*all_states, key_positions));
  return AggregateGroups(*all_states, grouping, columns, Batching(options_, key_positions),
                         kMergeStep, sink);
}

}  // namespace quiver::exec::grouped
