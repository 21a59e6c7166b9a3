#include "quiver/exec/grouped/grouping.h"

#include <utility>

#include <arrow/array/builder_primitive.h>
#include <arrow/buffer.h>
#include <arrow/compute/api_vector.h>
#include <arrow/compute/exec.h>
#include <arrow/compute/row/grouper.h>
#include <arrow/datum.h>
#include <arrow/util/byte_size.h>

namespace quiver::exec::grouped {
namespace {

// Names a group by its keys: "k=3, name=ada".
std::string DescribeGroup(const arrow::RecordBatch& batch, int64_t row,
                          const std::vector<int>& keys) {
  std::string text;
  for (int key : keys) {
    auto scalar = batch.column(key)->GetScalar(row);
    text += (text.empty() ? "" : ", ") + batch.schema()->field(key)->name() + "=" +
            (scalar.ok() ? (*scalar)->ToString() : "?");
  }
  return text;
}

// The group column of a batch of groups [first, first + count): group g of it
// numbered g - first on each of its rows.
arrow::Result<std::shared_ptr<arrow::Array>> GroupColumn(const std::vector<int64_t>& offsets,
                                                         int64_t first, int64_t count) {
  const int64_t rows = offsets[first + count] - offsets[first];
  ARROW_ASSIGN_OR_RAISE(auto buffer, arrow::AllocateBuffer(rows * sizeof(int32_t)));
  auto* out = reinterpret_cast<int32_t*>(buffer->mutable_data());
  for (int64_t g = 0; g < count; ++g) {
    const int64_t size = offsets[first + g + 1] - offsets[first + g];
    for (int64_t i = 0; i < size; ++i) *out++ = static_cast<int32_t>(g);
  }
  return std::make_shared<arrow::Int32Array>(rows, std::move(buffer));
}

}  // namespace

arrow::Result<Grouping> GroupRows(const arrow::RecordBatch& batch, const std::vector<int>& keys) {
  std::vector<arrow::TypeHolder> types;
  std::vector<arrow::Datum> values;
  for (int key : keys) {
    types.emplace_back(batch.column(key)->type());
    values.emplace_back(batch.column(key));
  }
  ARROW_ASSIGN_OR_RAISE(auto grouper, arrow::compute::Grouper::Make(types));
  const int64_t rows = batch.num_rows();
  arrow::compute::ExecBatch exec_batch(std::move(values), rows);
  ARROW_ASSIGN_OR_RAISE(arrow::Datum ids_datum,
                        grouper->Consume(arrow::compute::ExecSpan(exec_batch)));
  const auto& ids = ids_datum.array();
  const uint32_t* id = ids->GetValues<uint32_t>(1);
  const int64_t groups = grouper->num_groups();

  // A counting sort by group id: linear, and stable within each group.
  Grouping grouping;
  grouping.offsets.assign(groups + 1, 0);
  for (int64_t row = 0; row < rows; ++row) ++grouping.offsets[id[row] + 1];
  for (int64_t g = 0; g < groups; ++g) grouping.offsets[g + 1] += grouping.offsets[g];
  std::vector<int64_t> next(grouping.offsets.begin(), grouping.offsets.end() - 1);
  ARROW_ASSIGN_OR_RAISE(auto buffer, arrow::AllocateBuffer(rows * sizeof(uint64_t)));
  auto* order = reinterpret_cast<uint64_t*>(buffer->mutable_data());
  for (int64_t row = 0; row < rows; ++row) order[next[id[row]]++] = static_cast<uint64_t>(row);
  grouping.order = std::make_shared<arrow::UInt64Array>(rows, std::move(buffer));

  // Group ids number groups in order of their first row, as do the uniques.
  ARROW_ASSIGN_OR_RAISE(auto uniques, grouper->GetUniques());
  arrow::FieldVector fields;
  arrow::ArrayVector columns;
  for (size_t i = 0; i < keys.size(); ++i) {
    fields.push_back(batch.schema()->field(keys[i]));
    columns.push_back(uniques.values[i].make_array());
  }
  grouping.keys = arrow::RecordBatch::Make(arrow::schema(std::move(fields)), groups, columns);
  return grouping;
}

std::shared_ptr<arrow::Schema> GroupedSchema(const arrow::Schema& input,
                                             const std::vector<int>& columns) {
  arrow::FieldVector fields{arrow::field(kGroupColumn, arrow::int32(), /*nullable=*/false)};
  for (int column : columns) fields.push_back(input.field(column));
  return arrow::schema(std::move(fields));
}

arrow::Status ForEachGroupedBatch(const arrow::RecordBatch& batch, const Grouping& grouping,
                                  const std::vector<int>& columns,
                                  const GroupedBatchOptions& options,
                                  const GroupedBatchSink& sink) {
  ARROW_ASSIGN_OR_RAISE(auto selected, batch.SelectColumns(columns));
  const auto schema = GroupedSchema(*batch.schema(), columns);
  const auto& offsets = grouping.offsets;
  const int64_t groups = grouping.num_groups();
  int64_t first = 0;
  while (first < groups) {
    // Whole groups up to batch_rows; a larger group goes alone.
    int64_t end = first + 1;
    while (end < groups && offsets[end + 1] - offsets[first] <= options.batch_rows) ++end;
    const int64_t start_row = offsets[first];
    const int64_t rows = offsets[end] - start_row;
    auto indices = grouping.order->Slice(start_row, rows);
    ARROW_ASSIGN_OR_RAISE(arrow::Datum taken, arrow::compute::Take(selected, indices));
    auto rows_batch = taken.record_batch();
    // Each group is measured only when the batch as a whole is over the limit.
    if (arrow::util::TotalBufferSize(*rows_batch) > options.max_group_bytes) {
      for (int64_t g = first; g < end; ++g) {
        auto group = rows_batch->Slice(offsets[g] - start_row, offsets[g + 1] - offsets[g]);
        ARROW_ASSIGN_OR_RAISE(int64_t bytes, arrow::util::ReferencedBufferSize(*group));
        if (bytes > options.max_group_bytes) {
          const int64_t row = static_cast<int64_t>(grouping.order->Value(offsets[g]));
          return arrow::Status::CapacityError("the group ", DescribeGroup(batch, row, options.keys),
                                              " holds ", offsets[g + 1] - offsets[g], " rows and ",
                                              bytes, " bytes, over ", options.limit_label, " (",
                                              options.max_group_bytes,
                                              " bytes); raise the limit or group by more columns");
        }
      }
    }
    ARROW_ASSIGN_OR_RAISE(auto group_column, GroupColumn(offsets, first, end - first));
    arrow::ArrayVector arrays{group_column};
    for (const auto& column : rows_batch->columns()) arrays.push_back(column);
    ARROW_RETURN_NOT_OK(
        sink(arrow::RecordBatch::Make(schema, rows, std::move(arrays)), first, end - first));
    first = end;
  }
  return arrow::Status::OK();
}

}  // namespace quiver::exec::grouped
