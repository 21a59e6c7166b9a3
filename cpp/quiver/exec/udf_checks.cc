#include "quiver/exec/udf_checks.h"

#include <algorithm>
#include <set>

#include <arrow/compute/expression.h>
#include <arrow/type.h>

#include "quiver/exec/argument_plan.h"

namespace quiver::exec {
namespace {

namespace cp = arrow::compute;

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::vector<std::string> FieldNames(const arrow::Schema& schema) {
  std::vector<std::string> names;
  for (const auto& field : schema.fields()) names.push_back(field->name());
  return names;
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out.empty() ? "(none)" : out;
}

arrow::Status UsedTwice(const std::string& name, const std::string& why) {
  return arrow::Status::Invalid("UDF name '", name, "' is used twice in the output: ", why);
}

}  // namespace

arrow::Status CheckUdfNames(const std::vector<UdfCall>& udfs) {
  std::set<std::string> names;
  for (const auto& udf : udfs) {
    if (udf.name.empty()) return arrow::Status::Invalid("every UDF needs a name");
    if (!names.insert(udf.name).second) {
      return UsedTwice(udf.name, "two UDFs have that name; give each its own name");
    }
  }
  return arrow::Status::OK();
}

arrow::Status CheckColumn(const std::string& column, const arrow::Schema& input,
                          const std::string& used_by) {
  const auto indices = input.GetAllFieldIndices(column);
  if (indices.size() == 1) return arrow::Status::OK();
  if (indices.size() > 1) {
    return arrow::Status::Invalid(used_by, " names column '", column, "', but the input has ",
                                  indices.size(), " columns of that name");
  }
  const auto names = FieldNames(input);
  const std::string close = ClosestName(column, names);
  return arrow::Status::Invalid(used_by, " names column '", column,
                                "', which the input does not have",
                                close.empty() ? "" : "; did you mean '" + close + "'?",
                                "\nthe input columns are: ", Join(names));
}

arrow::Status CheckArgument(const UdfCall& udf, size_t index, const arrow::Schema& input) {
  const auto& argument = udf.arguments[index];
  const std::string used_by = "UDF '" + udf.name + "' argument " + std::to_string(index + 1) +
                              " (" + argument.ToString() + ")";
  for (const auto& ref : cp::FieldsInExpression(argument)) {
    if (ref.name() == nullptr) continue;  // by position: Bind below checks it
    ARROW_RETURN_NOT_OK(CheckColumn(*ref.name(), input, used_by));
  }
  auto bound = argument.Bind(input);
  if (!bound.ok()) {
    return arrow::Status::Invalid(used_by,
                                  " cannot be computed on the input: ", bound.status().message());
  }
  return arrow::Status::OK();
}

arrow::Result<std::vector<int>> ResolvePassThrough(const UdfOperatorOptions& options,
                                                   const arrow::Schema& input) {
  std::vector<int> indices;
  if (!options.pass_through) {
    for (int i = 0; i < input.num_fields(); ++i) indices.push_back(i);
  }
  for (const auto& column : options.pass_through.value_or(std::vector<std::string>{})) {
    ARROW_RETURN_NOT_OK(CheckColumn(column, input, options.pass_through_label));
    indices.push_back(input.GetFieldIndex(column));
  }
  for (const auto& udf : options.udfs) {
    for (int index : indices) {
      if (input.field(index)->name() != udf.name) continue;
      return UsedTwice(udf.name,
                       "the input column of that name is kept beside the results; rename the "
                       "UDF or leave the column out with " +
                           options.pass_through_label);
    }
  }
  return indices;
}

arrow::Status CheckOperatorNumbers(const UdfOperatorOptions& options, const OptionNames& names) {
  PipelineOptions pipeline;
  pipeline.workers = options.workers;
  pipeline.max_batches_in_flight_per_worker = options.max_batches_in_flight_per_worker;
  ARROW_RETURN_NOT_OK(CheckPipelineOptions(pipeline, names));
  return CheckAtLeastOne(names.max_batch_bytes, options.max_batch_bytes);
}

arrow::Status CheckUdfCalls(const UdfOperatorOptions& options, const arrow::Schema& input) {
  ARROW_RETURN_NOT_OK(CheckUdfNames(options.udfs));
  ARROW_RETURN_NOT_OK(ResolvePassThrough(options, input).status());
  return ArgumentPlan::Make(options.udfs, input).status();
}

std::string QuotedNames(const std::vector<UdfCall>& udfs) {
  std::string names;
  for (const auto& udf : udfs) names += (names.empty() ? "'" : ", '") + udf.name + "'";
  return names;
}

std::string ClosestName(std::string_view name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, name.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    const size_t distance = EditDistance(name, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

}  // namespace quiver::exec
