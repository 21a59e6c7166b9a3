#include "quiver/exec/batch_bytes.h"

#include <algorithm>
#include <utility>

#include <arrow/array/data.h>
#include <arrow/util/byte_size.h>

#include "quiver/exec/view_compaction.h"

namespace quiver::exec {
namespace {

int64_t WholeBuffers(const arrow::ArrayData& data) {
  int64_t bytes = 0;
  for (const auto& buffer : data.buffers) bytes += buffer == nullptr ? 0 : buffer->size();
  for (const auto& child : data.child_data) bytes += WholeBuffers(*child);
  if (data.dictionary != nullptr) bytes += WholeBuffers(*data.dictionary);
  return bytes;
}

}  // namespace

arrow::Result<int64_t> BatchBytes(const arrow::RecordBatch& batch) {
  int64_t bytes = 0;
  for (const auto& column : batch.column_data()) {
    // View columns are sent compacted (view_compaction.h): count what they reference.
    if (IsViewType(*column->type)) {
      ARROW_ASSIGN_OR_RAISE(const int64_t view_bytes, ViewArrayBytes(*column));
      bytes += view_bytes;
      continue;
    }
    auto referenced = arrow::util::ReferencedBufferSize(*column);
    // Types whose ranges Arrow cannot tell count whole: a larger figure only
    // makes pieces smaller.
    bytes += referenced.ok() ? *referenced : WholeBuffers(*column);
  }
  return bytes;
}

int64_t BatchBytesUpperBound(const arrow::RecordBatch& batch) {
  int64_t bytes = 0;
  for (const auto& column : batch.column_data()) bytes += WholeBuffers(*column);
  return bytes;
}

arrow::Result<int64_t> RowsThatFit(const arrow::RecordBatch& batch, int64_t offset,
                                   int64_t max_bytes) {
  const int64_t left = batch.num_rows() - offset;
  if (left <= 1) return left;
  ARROW_ASSIGN_OR_RAISE(int64_t all, BatchBytes(*batch.Slice(offset, left)));
  if (all <= max_bytes) return left;
  // The bytes of a piece grow with its rows: the largest piece that fits lies
  // between 1 (always taken) and `left` (too large). Start from the guess that
  // rows are alike, then halve the interval.
  int64_t fits = 1;
  int64_t too_large = left;
  int64_t guess = std::max<int64_t>(
      1, static_cast<int64_t>(static_cast<double>(left) * static_cast<double>(max_bytes) /
                              static_cast<double>(all)));
  while (too_large - fits > 1) {
    const int64_t rows = guess > fits && guess < too_large ? guess : fits + (too_large - fits) / 2;
    guess = 0;
    ARROW_ASSIGN_OR_RAISE(int64_t bytes, BatchBytes(*batch.Slice(offset, rows)));
    (bytes <= max_bytes ? fits : too_large) = rows;
  }
  return fits;
}

namespace {

class ByteCappedReader : public arrow::RecordBatchReader {
 public:
  ByteCappedReader(std::shared_ptr<arrow::RecordBatchReader> input, std::vector<int> columns,
                   int64_t max_bytes)
      : input_(std::move(input)), columns_(std::move(columns)), max_bytes_(max_bytes) {}

  std::shared_ptr<arrow::Schema> schema() const override { return input_->schema(); }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    if (batch_ == nullptr) {
      ARROW_RETURN_NOT_OK(input_->ReadNext(&batch_));
      if (batch_ == nullptr || batch_->num_rows() == 0) {
        *out = std::move(batch_);
        return arrow::Status::OK();
      }
      ARROW_ASSIGN_OR_RAISE(measured_, batch_->SelectColumns(columns_));
      offset_ = 0;
    }
    int64_t take = batch_->num_rows();
    if (offset_ > 0 || BatchBytesUpperBound(*measured_) > max_bytes_) {
      ARROW_ASSIGN_OR_RAISE(take, RowsThatFit(*measured_, offset_, max_bytes_));
    }
    *out = take == batch_->num_rows() ? batch_ : batch_->Slice(offset_, take);
    offset_ += take;
    if (offset_ >= batch_->num_rows()) batch_ = nullptr;
    return arrow::Status::OK();
  }

  arrow::Status Close() override { return input_->Close(); }

 private:
  std::shared_ptr<arrow::RecordBatchReader> input_;
  std::vector<int> columns_;
  int64_t max_bytes_;
  std::shared_ptr<arrow::RecordBatch> batch_;     // being cut
  std::shared_ptr<arrow::RecordBatch> measured_;  // its columns that count
  int64_t offset_ = 0;
};

}  // namespace

std::shared_ptr<arrow::RecordBatchReader> CapBatchBytes(
    std::shared_ptr<arrow::RecordBatchReader> input, std::vector<int> columns, int64_t max_bytes) {
  return std::make_shared<ByteCappedReader>(std::move(input), std::move(columns), max_bytes);
}

}  // namespace quiver::exec
