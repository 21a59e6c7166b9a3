#include "quiver/exec/grouped/grouped_map.h"

#include <numeric>
#include <set>
#include <utility>

#include "quiver/exec/grouped/grouping.h"

namespace quiver::exec::grouped {
namespace {

arrow::Status CheckResultSchema(const UdfCall& function, const arrow::Schema& schema) {
  std::set<std::string> names;
  for (const auto& field : schema.fields()) {
    if (field->name().empty() || !names.insert(field->name()).second) {
      return arrow::Status::Invalid("grouped map '", function.name, "' declares the result schema ",
                                    schema.ToString(),
                                    ", whose column names are not all distinct and non-empty");
    }
  }
  if (schema.num_fields() == 0) {
    return arrow::Status::Invalid("grouped map '", function.name, "' declares no result column");
  }
  return arrow::Status::OK();
}

}  // namespace

GroupedMapRun::~GroupedMapRun() = default;

arrow::Result<std::unique_ptr<GroupedMapRun>> GroupedMapRun::Start(
    worker::WorkerDispatcher* dispatcher, UdfCall function, KindOptions options,
    std::shared_ptr<arrow::RecordBatchReader> input) {
  std::unique_ptr<GroupedMapRun> run(new GroupedMapRun());
  const auto& schema = *input->schema();
  if (options.group_by.empty()) return arrow::Status::Invalid("a grouped map needs key columns");
  ARROW_ASSIGN_OR_RAISE(run->keys_, ResolveColumns(schema, options.group_by, "the group keys"));
  // The function sees every input column, after the group column.
  std::vector<int> offsets(schema.num_fields());
  std::iota(offsets.begin(), offsets.end(), 1);
  std::vector<int> columns(schema.num_fields());
  std::iota(columns.begin(), columns.end(), 0);
  ARROW_ASSIGN_OR_RAISE(
      run->pipeline_,
      StartKind(dispatcher, {function}, v1::GROUPED_MAP, *GroupedSchema(schema, columns), {offsets},
                options, "running grouped map '" + function.name + "'"));
  ARROW_RETURN_NOT_OK(CheckResultSchema(function, *run->pipeline_->result_schema()));
  run->function_ = std::move(function);
  run->options_ = std::move(options);
  run->input_ = std::move(input);
  return run;
}

std::shared_ptr<arrow::Schema> GroupedMapRun::schema() const {
  return pipeline_->result_schema()->RemoveMetadata();
}

arrow::Status GroupedMapRun::Run(const BatchSink& sink) {
  ARROW_ASSIGN_OR_RAISE(auto whole, ReadWhole(input_.get(), &metrics_));
  ARROW_ASSIGN_OR_RAISE(Grouping grouping, GroupRows(*whole, keys_));
  std::vector<int> columns(whole->num_columns());
  std::iota(columns.begin(), columns.end(), 0);
  GroupedBatchOptions batching;
  batching.batch_rows = options_.batch_rows;
  batching.max_group_bytes = options_.max_group_bytes;
  batching.limit_label = options_.max_group_bytes_label;
  batching.keys = keys_;
  const auto output_schema = schema();
  auto take = [&](Answer answer) -> arrow::Status {
    metrics_.rows_out += answer.result->num_rows();
    if (answer.result->num_rows() == 0) return arrow::Status::OK();
    ARROW_ASSIGN_OR_RAISE(auto out, answer.result->ReplaceSchema(output_schema));
    return sink(std::move(out));
  };
  auto send = [&](std::shared_ptr<arrow::RecordBatch> batch, int64_t first,
                  int64_t groups) -> arrow::Status {
    return pipeline_->SubmitInTurn(*batch, -1, first, GroupsText(first, groups), take);
  };
  arrow::Status sent = ForEachGroupedBatch(*whole, grouping, columns, batching, send);
  if (!sent.ok()) {
    return sent.WithMessage("grouped map '", function_.name, "': ", sent.message());
  }
  return FinishKind(pipeline_.get(), take, {function_}, "", &metrics_);
}

}  // namespace quiver::exec::grouped
