#pragma once

// Sending only the bytes a slice of a view column references.
//
// A string_view or binary_view array keeps its long values in shared data
// buffers that its views point into. A slice keeps every data buffer, and the
// Arrow IPC writer sends them all: a 65,536-row slice of a 2M-row column
// exported by Polars sends the whole column's 200 MB with every batch. The
// engine compacts such columns before it sends them.

#include <cstdint>
#include <memory>

#include <arrow/array/data.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

namespace quiver::exec {

/// Returns whether `type` is string_view or binary_view.
bool IsViewType(const arrow::DataType& type);

/// Returns the bytes a view array (`IsViewType`) takes once compacted: its
/// validity bits, its views and the long values they reference. Arrow's own
/// ReferencedBufferSize counts every data buffer of a slice whole.
arrow::Result<int64_t> ViewArrayBytes(const arrow::ArrayData& data);

/// Returns `array` with one data buffer holding only the bytes its views
/// reference, when its data buffers hold more than twice that; otherwise
/// returns `array` itself. A view pointing outside its buffers is an error,
/// never a read.
arrow::Result<std::shared_ptr<arrow::Array>> CompactViewArray(
    const std::shared_ptr<arrow::Array>& array, arrow::MemoryPool* pool);

/// Applies CompactViewArray to every top-level string_view and binary_view
/// column of `batch`; returns `batch` itself when none needed it.
arrow::Result<std::shared_ptr<arrow::RecordBatch>> CompactViewColumns(
    const std::shared_ptr<arrow::RecordBatch>& batch, arrow::MemoryPool* pool);

}  // namespace quiver::exec
