#pragma once

// Grouping rows by key columns, and cutting the grouped rows into batches of
// whole groups for the grouped kinds (docs/protocol.md, section 9).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <arrow/array.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>

namespace quiver::exec::grouped {

/// Name of column 0 of every batch a grouped kind sends: the group number
/// within the batch (int32, 0, 0, 1, 2, 2, ...).
inline constexpr char kGroupColumn[] = "__group";

/// The rows of a batch in groups of equal keys.
struct Grouping {
  /// Row indices group by group; groups in order of their first row, rows of a
  /// group in input order (the grouping is stable).
  std::shared_ptr<arrow::UInt64Array> order;
  /// Where each group starts in `order`, plus the end: num_groups() + 1 entries.
  std::vector<int64_t> offsets;
  /// The key values of each group, one row per group, in group order.
  std::shared_ptr<arrow::RecordBatch> keys;

  int64_t num_groups() const { return static_cast<int64_t>(offsets.size()) - 1; }
};

/// Groups the rows of `batch` by the columns `keys` (hash grouping: Arrow's
/// Grouper; nulls form a group of their own).
arrow::Result<Grouping> GroupRows(const arrow::RecordBatch& batch, const std::vector<int>& keys);

/// How grouped rows are cut into batches.
struct GroupedBatchOptions {
  /// Most rows per batch; a larger group goes alone in a batch of its own.
  int64_t batch_rows = 65536;
  /// Largest group, in Arrow buffer bytes; a larger one fails the run.
  int64_t max_group_bytes = int64_t{512} << 20;
  /// Names the limit in errors (e.g. "--max-group-bytes").
  std::string limit_label = "max_group_bytes";
  /// Columns of the input (as in GroupRows) that name a group in errors.
  std::vector<int> keys;
};

/// Receives one batch of whole groups: groups [first_group, first_group + groups).
using GroupedBatchSink = std::function<arrow::Status(std::shared_ptr<arrow::RecordBatch> batch,
                                                     int64_t first_group, int64_t groups)>;

/// Cuts the rows of `batch`, in the order of `grouping`, into batches of whole
/// groups holding the group column then `columns` of `batch`, and hands each
/// to `sink` in group order. Fails, naming the group's keys, on a group over
/// `options.max_group_bytes`.
arrow::Status ForEachGroupedBatch(const arrow::RecordBatch& batch, const Grouping& grouping,
                                  const std::vector<int>& columns,
                                  const GroupedBatchOptions& options, const GroupedBatchSink& sink);

/// Returns the schema of the batches ForEachGroupedBatch makes.
std::shared_ptr<arrow::Schema> GroupedSchema(const arrow::Schema& input,
                                             const std::vector<int>& columns);

}  // namespace quiver::exec::grouped
