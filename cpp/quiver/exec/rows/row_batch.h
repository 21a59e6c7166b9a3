#pragma once

// RowBatch: rows in the row-major layout of a row engine, modeled on Spark's
// UnsafeRow, for input path 2 (an engine that produces rows feeds quiver).
//
// Layout of a row of n fields (every part a multiple of 8 bytes):
//
//   [null bitset: ceil(n / 64) words] [n slots of 8 bytes] [variable-length area]
//
// - Bit i of the bitset (word i / 64, bit i % 64) is set when field i is null;
//   a null field's slot is zero.
// - A fixed-width value of at most 8 bytes (integers, floats, half floats, bool
//   as 0/1, date, timestamp, time, duration, month and day-time intervals) lives
//   in its slot, in the slot's low bytes (little-endian), the rest zero.
// - Any other value lives in the variable-length area; its slot holds
//   (offset << 32) | length, the offset counted from the start of the row (or
//   nested array) the slot belongs to, so nested values can be moved as they
//   are. Each value starts 8-byte aligned. Such values are: binary and string
//   bytes; fixed-size binary and decimal bytes (little-endian, as in Arrow);
//   month-day-nano intervals; a struct, as a nested row of its fields; a list,
//   large list, fixed-size list or map, as a nested array:
//
//     [count: int64] [null bitset: ceil(count / 64) words] [count slots] [variable-length area]
//
//   (a map is an array of (key, value) rows).
// - A dictionary-encoded value is stored decoded, as a row engine keeps it.
//
// All rows of a batch lie one after the other in one buffer; row i spans
// [row_offsets()[i], row_offsets()[i + 1]).

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/memory_pool.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

namespace quiver::exec::rows {

class RowView;
class ArrayView;

/// \brief Reads the null bits and 8-byte slots of a row or of a nested array.
///
/// A view does not own its bytes; it is valid while the RowBatch it reads is.
class SlotView {
 public:
  /// Returns the number of bytes of a null bitset for `count` values.
  static constexpr int64_t BitsetBytes(int64_t count) { return ((count + 63) / 64) * 8; }

  /// Returns the number of slots (fields of a row, elements of an array).
  int64_t size() const { return count_; }

  /// Returns whether value `i` is null.
  bool IsNull(int64_t i) const {
    uint64_t word;
    std::memcpy(&word, bitset_ + (i / 64) * 8, sizeof(word));
    return (word >> (i % 64)) & 1;
  }

  /// Returns the raw 8 bytes of slot `i`.
  uint64_t slot(int64_t i) const {
    uint64_t value;
    std::memcpy(&value, slots_ + i * 8, sizeof(value));
    return value;
  }

  /// Returns the fixed-width value of at most 8 bytes stored in slot `i`.
  template <typename T>
  T GetFixed(int64_t i) const {
    static_assert(sizeof(T) <= 8, "values wider than 8 bytes live in the variable-length area");
    T value;
    std::memcpy(&value, slots_ + i * 8, sizeof(T));
    return value;
  }

  /// Returns the bytes of variable-length value `i`.
  std::string_view GetBytes(int64_t i) const {
    const uint64_t packed = slot(i);
    return {reinterpret_cast<const char*>(base_ + (packed >> 32)),
            static_cast<size_t>(packed & 0xFFFFFFFFu)};
  }

  /// Returns struct value `i`, a nested row of `num_fields` fields.
  inline RowView GetRow(int64_t i, int num_fields) const;

  /// Returns list value `i`, a nested array.
  inline ArrayView GetArray(int64_t i) const;

 protected:
  SlotView(const uint8_t* base, const uint8_t* bitset, int64_t count)
      : base_(base), bitset_(bitset), slots_(bitset + BitsetBytes(count)), count_(count) {}

 private:
  const uint8_t* base_;    // where variable-length offsets count from
  const uint8_t* bitset_;  // null bits
  const uint8_t* slots_;   // one 8-byte slot per value
  int64_t count_;
};

/// \brief A row (or a nested struct row) of `num_fields` fields.
class RowView : public SlotView {
 public:
  RowView(const uint8_t* data, int num_fields) : SlotView(data, data, num_fields) {}

  /// Returns the byte offset of field `field`'s slot from the start of a row.
  static constexpr int64_t SlotOffset(int num_fields, int field) {
    return BitsetBytes(num_fields) + int64_t{8} * field;
  }

  /// Returns the size of the fixed part (bitset and slots) of a row.
  static constexpr int64_t FixedSize(int num_fields) { return SlotOffset(num_fields, num_fields); }
};

/// \brief A nested array: a count, then null bits and slots like a row's.
class ArrayView : public SlotView {
 public:
  explicit ArrayView(const uint8_t* data) : SlotView(data, data + 8, Count(data)) {}

  /// Returns the number of elements.
  int64_t length() const { return size(); }

  /// Returns the size of the fixed part (count, bitset and slots) of an array.
  static constexpr int64_t FixedSize(int64_t count) { return 8 + BitsetBytes(count) + 8 * count; }

 private:
  static int64_t Count(const uint8_t* data) {
    int64_t count;
    std::memcpy(&count, data, sizeof(count));
    return count;
  }
};

RowView SlotView::GetRow(int64_t i, int num_fields) const {
  return RowView(base_ + (slot(i) >> 32), num_fields);
}

ArrayView SlotView::GetArray(int64_t i) const { return ArrayView(base_ + (slot(i) >> 32)); }

/// \brief The rows of one batch, in one contiguous buffer (see the layout above).
class RowBatch {
 public:
  /// Wraps `data` holding rows of `schema` at `row_offsets` (one more than the rows).
  RowBatch(std::shared_ptr<arrow::Schema> schema, std::shared_ptr<arrow::Buffer> data,
           std::vector<int64_t> row_offsets);

  /// Returns the schema the rows follow.
  const std::shared_ptr<arrow::Schema>& schema() const { return schema_; }

  /// Returns the number of rows.
  int64_t num_rows() const { return static_cast<int64_t>(row_offsets_.size()) - 1; }

  /// Returns row `i`.
  RowView row(int64_t i) const { return RowView(row_data(i), num_fields_); }

  /// Returns the first byte of row `i`.
  const uint8_t* row_data(int64_t i) const { return data_->data() + row_offsets_[i]; }

  /// Returns the size in bytes of row `i`.
  int64_t row_size(int64_t i) const { return row_offsets_[i + 1] - row_offsets_[i]; }

  /// Returns the buffer holding all rows.
  const std::shared_ptr<arrow::Buffer>& data() const { return data_; }

  /// Returns where each row starts, then where the last one ends.
  const std::vector<int64_t>& row_offsets() const { return row_offsets_; }

 private:
  std::shared_ptr<arrow::Schema> schema_;
  int num_fields_;
  std::shared_ptr<arrow::Buffer> data_;
  std::vector<int64_t> row_offsets_;
};

/// \brief Converts a batch to rows, row by row (an engine's "ColumnarToRow").
///
/// Handles sliced arrays and every type the layout above describes; any other
/// type (union, list view, run-end encoded, extension) is NotImplemented.
arrow::Result<RowBatch> ColumnarToRows(const arrow::RecordBatch& batch,
                                       arrow::MemoryPool* pool = arrow::default_memory_pool());

}  // namespace quiver::exec::rows
