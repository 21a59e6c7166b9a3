#include "quiver/conformance/kit_data.h"

#include <string>
#include <vector>

#include <arrow/array.h>
#include <arrow/builder.h>
#include <arrow/compute/cast.h>
#include <arrow/type.h>

namespace quiver::conformance {
namespace {

std::shared_ptr<arrow::Array> StringArray(int64_t rows, int64_t first, const std::string& prefix,
                                          bool with_nulls) {
  arrow::StringBuilder builder;
  for (int64_t i = 0; i < rows; ++i) {
    if (with_nulls && i % 5 == 1) {
      (void)builder.AppendNull();
    } else {
      (void)builder.Append(prefix + std::to_string(first + i));
    }
  }
  return *builder.Finish();
}

std::shared_ptr<arrow::Array> Int64Array(int64_t rows) {
  arrow::Int64Builder builder;
  for (int64_t i = 0; i < rows; ++i) {
    if (i % 5 == 1) {
      (void)builder.AppendNull();
    } else {
      (void)builder.Append(i);
    }
  }
  return *builder.Finish();
}

}  // namespace

std::shared_ptr<arrow::RecordBatch> Strings(int64_t rows, int64_t first) {
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("text", arrow::utf8())}), rows,
                                  {StringArray(rows, first, "text ", /*with_nulls=*/false)});
}

std::shared_ptr<arrow::RecordBatch> Numbers(int64_t rows) {
  auto integers = Int64Array(rows);
  auto doubles = *arrow::compute::Cast(*integers, arrow::float64());
  return arrow::RecordBatch::Make(
      arrow::schema({arrow::field("i", arrow::int64()), arrow::field("f", arrow::float64())}), rows,
      {integers, doubles});
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> TypeFamilies(int64_t rows) {
  auto integers = Int64Array(rows);
  auto strings = StringArray(rows, 0, "value ", /*with_nulls=*/true);
  ARROW_ASSIGN_OR_RAISE(auto small, arrow::compute::Cast(*integers, arrow::int32()));
  ARROW_ASSIGN_OR_RAISE(auto dates, arrow::compute::Cast(*small, arrow::date32()));
  const std::vector<std::shared_ptr<arrow::DataType>> from_integers = {
      arrow::int8(),
      arrow::int32(),
      arrow::uint16(),
      arrow::int64(),
      arrow::float32(),
      arrow::float64(),
      arrow::boolean(),
      arrow::decimal128(22, 2),
      arrow::timestamp(arrow::TimeUnit::MICRO),
      arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
      arrow::duration(arrow::TimeUnit::MILLI),
  };
  const std::vector<std::shared_ptr<arrow::DataType>> from_strings = {
      arrow::utf8(), arrow::large_utf8(), arrow::binary(), arrow::large_binary()};
  arrow::FieldVector fields;
  arrow::ArrayVector columns;
  auto add = [&](const std::shared_ptr<arrow::Array>& column) {
    fields.push_back(arrow::field(
        "c" + std::to_string(columns.size()) + "_" + column->type()->ToString(), column->type()));
    columns.push_back(column);
  };
  for (const auto& type : from_integers) {
    ARROW_ASSIGN_OR_RAISE(auto column, arrow::compute::Cast(*integers, type));
    add(column);
  }
  add(dates);
  for (const auto& type : from_strings) {
    ARROW_ASSIGN_OR_RAISE(auto column, arrow::compute::Cast(*strings, type));
    add(column);
  }
  // Nested: list<int64>, struct<i: int64, s: string>.
  arrow::ListBuilder lists(arrow::default_memory_pool(), std::make_shared<arrow::Int64Builder>());
  auto& items = static_cast<arrow::Int64Builder&>(*lists.value_builder());
  for (int64_t i = 0; i < rows; ++i) {
    if (i % 5 == 1) {
      ARROW_RETURN_NOT_OK(lists.AppendNull());
      continue;
    }
    ARROW_RETURN_NOT_OK(lists.Append());
    for (int64_t j = 0; j < i % 3; ++j) ARROW_RETURN_NOT_OK(items.Append(i * 10 + j));
  }
  ARROW_ASSIGN_OR_RAISE(auto list_column, lists.Finish());
  add(list_column);
  ARROW_ASSIGN_OR_RAISE(auto struct_column,
                        arrow::StructArray::Make(arrow::ArrayVector{integers, strings},
                                                 std::vector<std::string>{"i", "s"}));
  add(struct_column);
  return arrow::RecordBatch::Make(arrow::schema(fields), rows, columns);
}

std::shared_ptr<arrow::RecordBatch> LargeStrings(int64_t bytes) {
  const std::string value(1024, 'q');
  const int64_t rows = bytes / 1024;
  arrow::StringBuilder builder;
  (void)builder.Reserve(rows);
  (void)builder.ReserveData(rows * 1024);
  for (int64_t i = 0; i < rows; ++i) (void)builder.Append(value);
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("text", arrow::utf8())}), rows,
                                  {*builder.Finish()});
}

}  // namespace quiver::conformance
