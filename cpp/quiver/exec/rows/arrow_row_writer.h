#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <arrow/array/builder_base.h>
#include <arrow/memory_pool.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "quiver/exec/rows/row_batch.h"

namespace quiver::exec::rows {

/// \brief Turns rows into Arrow batches, one value at a time (input path 2).
///
/// This is the interface through which an engine that produces rows feeds
/// quiver, and deliberately the path Spark's ArrowWriter takes: every value of
/// every row is appended to an arrow::ArrayBuilder. The type is dispatched once
/// per column, when the writer is made; appending stays row by row.
class ArrowRowWriter {
 public:
  /// Makes a writer of batches of `schema`, allocating from `pool`.
  ///
  /// Fails with NotImplemented when a field's type has no row layout (see
  /// row_batch.h).
  static arrow::Result<std::unique_ptr<ArrowRowWriter>> Make(
      std::shared_ptr<arrow::Schema> schema,
      arrow::MemoryPool* pool = arrow::default_memory_pool());

  /// Appends row `index` of `rows`, whose schema must equal the writer's.
  ///
  /// Should a value fail to append (out of memory, a column over 2 GiB), the
  /// rows appended since the last flush are dropped, so columns stay aligned.
  arrow::Status Append(const RowBatch& rows, int64_t index);

  /// Appends every row of `rows`, in order.
  arrow::Status AppendAll(const RowBatch& rows);

  /// Returns the rows appended since the last flush as a batch of the writer's
  /// schema, and starts a new one (dictionaries start empty again).
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Flush();

  /// Returns the number of rows appended since the last flush.
  int64_t num_rows() const { return num_rows_; }

  /// Returns the schema of the batches written.
  const std::shared_ptr<arrow::Schema>& schema() const { return schema_; }

  /// Appends value `i` of a row or nested array (null or not) to a builder.
  using Appender = std::function<arrow::Status(const SlotView& values, int64_t i)>;

 private:
  ArrowRowWriter(std::shared_ptr<arrow::Schema> schema, arrow::MemoryPool* pool);

  // Makes fresh builders and the appenders that fill them.
  arrow::Status Reset();

  arrow::Status CheckSchema(const RowBatch& rows) const;

  // Appends one row; on failure drops the rows since the last flush.
  arrow::Status AppendRow(const RowView& row);

  std::shared_ptr<arrow::Schema> schema_;
  arrow::MemoryPool* pool_;
  std::vector<std::unique_ptr<arrow::ArrayBuilder>> builders_;
  std::vector<Appender> appenders_;  // one per field, over builders_
  int64_t num_rows_ = 0;
};

}  // namespace quiver::exec::rows
