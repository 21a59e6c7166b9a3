#include "quiver/exec/argument_plan.h"

#include <algorithm>
#include <utility>

#include <arrow/array/concatenate.h>
#include <arrow/array/util.h>
#include <arrow/chunked_array.h>
#include <arrow/datum.h>
#include <arrow/scalar.h>
#include <arrow/type.h>

#include "quiver/exec/udf_checks.h"

namespace quiver::exec {

arrow::Result<ArgumentPlan> ArgumentPlan::Make(const std::vector<UdfCall>& udfs,
                                               const arrow::Schema& input) {
  ArgumentPlan plan;
  plan.input_schema_ = std::make_shared<arrow::Schema>(input.fields(), input.metadata());
  for (const auto& udf : udfs) {
    std::vector<int> offsets;
    for (size_t i = 0; i < udf.arguments.size(); ++i) {
      ARROW_RETURN_NOT_OK(CheckArgument(udf, i, input));
      ARROW_ASSIGN_OR_RAISE(int column, plan.AddColumn(udf.arguments[i], input));
      offsets.push_back(column);
    }
    plan.offsets_.push_back(std::move(offsets));
  }
  plan.schema_ = arrow::schema(plan.fields_);
  return plan;
}

arrow::Result<int> ArgumentPlan::AddColumn(const arrow::compute::Expression& argument,
                                           const arrow::Schema& input) {
  if (const arrow::FieldRef* ref = argument.field_ref(); ref != nullptr && ref->IsName()) {
    const int index = input.GetFieldIndex(*ref->name());  // CheckArgument found it
    for (size_t i = 0; i < columns_.size(); ++i) {
      if (columns_[i].input_index == index) return static_cast<int>(i);
    }
    columns_.push_back({index, {}});
    fields_.push_back(input.field(index));
    return static_cast<int>(columns_.size() - 1);
  }
  ARROW_ASSIGN_OR_RAISE(auto bound, argument.Bind(input));
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (columns_[i].input_index < 0 && columns_[i].expression.Equals(bound)) {
      return static_cast<int>(i);
    }
  }
  columns_.push_back({-1, bound});
  fields_.push_back(arrow::field(argument.ToString(), bound.type()->GetSharedPtr()));
  return static_cast<int>(columns_.size() - 1);
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> ArgumentPlan::Build(
    const std::shared_ptr<arrow::RecordBatch>& input) const {
  std::vector<std::shared_ptr<arrow::Array>> columns;
  columns.reserve(columns_.size());
  for (const auto& column : columns_) {
    if (column.input_index >= 0) {
      columns.push_back(input->column(column.input_index));  // by reference: no copy
      continue;
    }
    ARROW_ASSIGN_OR_RAISE(arrow::Datum value, arrow::compute::ExecuteScalarExpression(
                                                  column.expression, *input_schema_, input));
    if (value.is_scalar()) {
      ARROW_ASSIGN_OR_RAISE(auto broadcast,
                            arrow::MakeArrayFromScalar(*value.scalar(), input->num_rows()));
      columns.push_back(std::move(broadcast));
    } else if (value.is_chunked_array()) {
      ARROW_ASSIGN_OR_RAISE(auto joined, arrow::Concatenate(value.chunked_array()->chunks()));
      columns.push_back(std::move(joined));
    } else {
      columns.push_back(value.make_array());
    }
  }
  return arrow::RecordBatch::Make(schema_, input->num_rows(), std::move(columns));
}

std::optional<std::vector<std::string>> ArgumentColumnNames(const std::vector<UdfCall>& udfs) {
  std::vector<std::string> names;
  for (const auto& udf : udfs) {
    for (const auto& argument : udf.arguments) {
      for (const auto& ref : arrow::compute::FieldsInExpression(argument)) {
        const arrow::FieldRef* top = &ref;
        if (ref.IsNested()) top = &ref.nested_refs()->front();
        if (!top->IsName()) return std::nullopt;
        if (std::find(names.begin(), names.end(), *top->name()) == names.end()) {
          names.push_back(*top->name());
        }
      }
    }
  }
  return names;
}

}  // namespace quiver::exec
