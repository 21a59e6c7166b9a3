#include "quiver/exec/grouped/table_function.h"

#include <map>
#include <numeric>
#include <set>
#include <utility>

#include <arrow/array/array_primitive.h>
#include <arrow/compute/api_vector.h>
#include <arrow/datum.h>
#include <arrow/type.h>

namespace quiver::exec::grouped {

arrow::Status CheckRowIndices(const std::string& udtf, const arrow::Array& indices,
                              int64_t input_rows, const std::string& batch) {
  if (indices.type_id() != arrow::Type::INT32 || indices.null_count() != 0) {
    return arrow::Status::Invalid("UDTF '", udtf, "' answered ", batch,
                                  " with a row-index column of type ", indices.type()->ToString(),
                                  indices.null_count() != 0 ? " holding nulls" : "",
                                  "; it must be int32 without nulls");
  }
  const auto& values = static_cast<const arrow::Int32Array&>(indices);
  int64_t previous = 0;
  for (int64_t i = 0; i < values.length(); ++i) {
    const int64_t index = values.Value(i);
    if (index < 0 || index >= input_rows) {
      return arrow::Status::Invalid("UDTF '", udtf, "' returned input row index ", index,
                                    " (output row ", i, ") for ", batch, " of ", input_rows,
                                    " rows: indices must be in [0, ", input_rows, ")");
    }
    if (index < previous) {
      return arrow::Status::Invalid("UDTF '", udtf, "' returned input row index ", index, " after ",
                                    previous, " (output row ", i, ") for ", batch,
                                    ": indices must not decrease (output keeps input order)");
    }
    previous = index;
  }
  return arrow::Status::OK();
}

TableFunctionRun::TableFunctionRun(ArgumentPlan plan) : plan_(std::move(plan)) {}

TableFunctionRun::~TableFunctionRun() = default;

arrow::Result<std::unique_ptr<TableFunctionRun>> TableFunctionRun::Start(
    worker::WorkerDispatcher* dispatcher, UdfCall udtf,
    std::optional<std::vector<std::string>> pass_through, const std::string& pass_through_label,
    KindOptions options, std::shared_ptr<arrow::RecordBatchReader> input) {
  const auto& schema = *input->schema();
  ARROW_ASSIGN_OR_RAISE(ArgumentPlan plan, ArgumentPlan::Make({udtf}, schema));
  std::unique_ptr<TableFunctionRun> run(new TableFunctionRun(std::move(plan)));
  if (pass_through) {
    ARROW_ASSIGN_OR_RAISE(run->pass_through_,
                          ResolveColumns(schema, *pass_through, pass_through_label));
  } else {
    run->pass_through_.resize(schema.num_fields());
    std::iota(run->pass_through_.begin(), run->pass_through_.end(), 0);
  }
  const std::string label = "running UDTF '" + udtf.name + "'";
  ARROW_ASSIGN_OR_RAISE(run->pipeline_,
                        StartKind(dispatcher, {udtf}, v1::TABLE_FUNCTION, *run->plan_.schema(),
                                  run->plan_.offsets(), options, label));
  const auto& results = *run->pipeline_->result_schema();
  if (results.num_fields() < 2 || results.field(0)->type()->id() != arrow::Type::INT32) {
    return arrow::Status::Invalid(label, ": the workers answered Init with the result schema ",
                                  results.ToString(),
                                  "; a UDTF's must be an int32 row index, then its columns");
  }
  arrow::FieldVector fields;
  std::set<std::string> names;
  for (int index : run->pass_through_) {
    fields.push_back(schema.field(index));
    names.insert(schema.field(index)->name());
  }
  for (int i = 1; i < results.num_fields(); ++i) {
    const auto& name = results.field(i)->name();
    if (!names.insert(name).second) {
      return arrow::Status::Invalid("UDTF '", udtf.name, "' returns a column '", name,
                                    "' that an input column kept beside it also has; leave "
                                    "that column out with ",
                                    pass_through_label);
    }
    fields.push_back(results.field(i)->RemoveMetadata());
  }
  run->output_schema_ = arrow::schema(std::move(fields));
  run->udtf_ = std::move(udtf);
  run->options_ = std::move(options);
  run->input_ = std::move(input);
  return run;
}

arrow::Status TableFunctionRun::Emit(const arrow::RecordBatch& input,
                                     const arrow::RecordBatch& result, int64_t batch_number,
                                     const BatchSink& sink) {
  const auto& indices = result.column(0);
  ARROW_RETURN_NOT_OK(CheckRowIndices(udtf_.name, *indices, input.num_rows(),
                                      "input batch " + std::to_string(batch_number)));
  if (result.num_rows() == 0) return arrow::Status::OK();
  arrow::ArrayVector columns;
  for (int index : pass_through_) {
    // Each input row repeated once per output row it made.
    ARROW_ASSIGN_OR_RAISE(arrow::Datum taken, arrow::compute::Take(input.column(index), indices));
    columns.push_back(taken.make_array());
  }
  for (int i = 1; i < result.num_columns(); ++i) columns.push_back(result.column(i));
  metrics_.rows_out += result.num_rows();
  return sink(arrow::RecordBatch::Make(output_schema_, result.num_rows(), std::move(columns)));
}

arrow::Status TableFunctionRun::Run(const BatchSink& sink) {
  std::map<int64_t, std::shared_ptr<arrow::RecordBatch>> inputs;  // by batch number
  int64_t next = 0;
  auto take = [&](Answer answer) -> arrow::Status {
    auto input = std::move(inputs[answer.tag]);
    inputs.erase(answer.tag);
    return Emit(*input, *answer.result, answer.tag, sink);
  };
  while (true) {
    ARROW_ASSIGN_OR_RAISE(auto batch, ReadCounted(input_.get(), &metrics_));
    if (batch == nullptr) break;
    if (batch->num_rows() == 0) continue;
    ARROW_ASSIGN_OR_RAISE(auto arguments, plan_.Build(batch));
    inputs[next] = batch;
    ARROW_RETURN_NOT_OK(
        pipeline_->SubmitInTurn(*arguments, -1, next, "input batch " + std::to_string(next), take));
    ++next;
  }
  return FinishKind(pipeline_.get(), take, {udtf_}, "", &metrics_);
}

}  // namespace quiver::exec::grouped
