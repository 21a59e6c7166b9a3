#include "quiver/exec/view_compaction.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <arrow/array/array_base.h>
#include <arrow/array/data.h>
#include <arrow/array/util.h>
#include <arrow/buffer.h>
#include <arrow/memory_pool.h>
#include <arrow/status.h>
#include <arrow/type.h>
#include <arrow/util/bitmap_ops.h>

namespace quiver::exec {
namespace {

using View = arrow::BinaryViewType::c_type;

int64_t DataBufferBytes(const arrow::ArrayData& data) {
  int64_t total = 0;
  for (size_t i = 2; i < data.buffers.size(); ++i) {
    if (data.buffers[i] != nullptr) total += data.buffers[i]->size();
  }
  return total;
}

// Returns the bytes the valid, not inlined views of `data` point to, checking
// that each lies inside its data buffer (the views come from user data).
arrow::Result<int64_t> ReferencedBytes(const arrow::ArrayData& data, const View* views) {
  const auto buffer_count = static_cast<int64_t>(data.buffers.size()) - 2;
  int64_t total = 0;
  for (int64_t i = 0; i < data.length; ++i) {
    const View& view = views[i];
    if (view.is_inline() || !data.IsValid(i)) continue;
    const int64_t index = view.ref.buffer_index;
    const bool inside =
        index >= 0 && index < buffer_count && data.buffers[2 + index] != nullptr &&
        view.ref.offset >= 0 &&
        view.ref.offset + static_cast<int64_t>(view.size()) <= data.buffers[2 + index]->size();
    if (!inside) {
      return arrow::Status::Invalid("row ", i, " of a ", data.type->ToString(),
                                    " column points outside its data buffers");
    }
    total += view.size();
  }
  return total;
}

// Copies the views of `data` into `out_views`, their long values into
// `out_bytes` (one data buffer), and points the views there.
void CopyViews(const arrow::ArrayData& data, const View* views, View* out_views,
               uint8_t* out_bytes) {
  int32_t written = 0;
  for (int64_t i = 0; i < data.length; ++i) {
    View view = views[i];
    if (!data.IsValid(i)) {
      view = View{};  // a null slot's view may hold anything: send zeros
    } else if (!view.is_inline()) {
      const uint8_t* from = data.buffers[2 + view.ref.buffer_index]->data() + view.ref.offset;
      std::memcpy(out_bytes + written, from, static_cast<size_t>(view.size()));
      view.ref.buffer_index = 0;
      view.ref.offset = written;
      written += view.size();
    }
    out_views[i] = view;
  }
}

arrow::Result<std::shared_ptr<arrow::Buffer>> CopyValidity(const arrow::ArrayData& data,
                                                           arrow::MemoryPool* pool) {
  if (data.buffers[0] == nullptr || data.GetNullCount() == 0) return nullptr;
  return arrow::internal::CopyBitmap(pool, data.buffers[0]->data(), data.offset, data.length);
}

arrow::Status CheckViewsBuffer(const arrow::ArrayData& data) {
  const int64_t views_needed = (data.offset + data.length) * static_cast<int64_t>(sizeof(View));
  if (data.buffers.size() < 2 || data.buffers[1] == nullptr ||
      data.buffers[1]->size() < views_needed) {
    return arrow::Status::Invalid("a ", data.type->ToString(), " column of ", data.length,
                                  " rows has a views buffer smaller than ", views_needed, " bytes");
  }
  return arrow::Status::OK();
}

}  // namespace

bool IsViewType(const arrow::DataType& type) {
  return type.id() == arrow::Type::STRING_VIEW || type.id() == arrow::Type::BINARY_VIEW;
}

arrow::Result<int64_t> ViewArrayBytes(const arrow::ArrayData& data) {
  ARROW_RETURN_NOT_OK(CheckViewsBuffer(data));
  ARROW_ASSIGN_OR_RAISE(const int64_t referenced, ReferencedBytes(data, data.GetValues<View>(1)));
  const int64_t validity = data.buffers[0] == nullptr ? 0 : (data.length + 7) / 8;
  return validity + data.length * static_cast<int64_t>(sizeof(View)) + referenced;
}

arrow::Result<std::shared_ptr<arrow::Array>> CompactViewArray(
    const std::shared_ptr<arrow::Array>& array, arrow::MemoryPool* pool) {
  const arrow::ArrayData& data = *array->data();
  if (!IsViewType(*data.type)) return array;
  ARROW_RETURN_NOT_OK(CheckViewsBuffer(data));
  const View* views = data.GetValues<View>(1);
  ARROW_ASSIGN_OR_RAISE(const int64_t referenced, ReferencedBytes(data, views));
  // Compacting costs one copy of what is referenced; skip it unless it saves as much again.
  if (DataBufferBytes(data) <= 2 * referenced) return array;
  if (referenced > INT32_MAX) return array;  // view offsets are 32-bit: one buffer cannot hold it
  ARROW_ASSIGN_OR_RAISE(
      auto out_views,
      arrow::AllocateBuffer(data.length * static_cast<int64_t>(sizeof(View)), pool));
  ARROW_ASSIGN_OR_RAISE(auto out_bytes, arrow::AllocateBuffer(referenced, pool));
  CopyViews(data, views, out_views->mutable_data_as<View>(), out_bytes->mutable_data());
  ARROW_ASSIGN_OR_RAISE(auto validity, CopyValidity(data, pool));
  const int64_t null_count = validity == nullptr ? 0 : data.GetNullCount();
  std::vector<std::shared_ptr<arrow::Buffer>> buffers = {std::move(validity), std::move(out_views),
                                                         std::move(out_bytes)};
  auto compacted = arrow::ArrayData::Make(data.type, data.length, std::move(buffers), null_count);
  return arrow::MakeArray(std::move(compacted));
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> CompactViewColumns(
    const std::shared_ptr<arrow::RecordBatch>& batch, arrow::MemoryPool* pool) {
  std::vector<std::shared_ptr<arrow::Array>> columns = batch->columns();
  bool changed = false;
  for (auto& column : columns) {
    ARROW_ASSIGN_OR_RAISE(auto compacted, CompactViewArray(column, pool));
    changed = changed || compacted != column;
    column = std::move(compacted);
  }
  if (!changed) return batch;
  return arrow::RecordBatch::Make(batch->schema(), batch->num_rows(), std::move(columns));
}

}  // namespace quiver::exec
