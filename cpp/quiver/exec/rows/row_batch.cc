#include "quiver/exec/rows/row_batch.h"

#include <algorithm>
#include <limits>
#include <utility>

#include <arrow/array.h>
#include <arrow/status.h>
#include <arrow/type.h>
#include <arrow/util/bit_util.h>

namespace quiver::exec::rows {

RowBatch::RowBatch(std::shared_ptr<arrow::Schema> schema, std::shared_ptr<arrow::Buffer> data,
                   std::vector<int64_t> row_offsets)
    : schema_(std::move(schema)),
      num_fields_(schema_->num_fields()),
      data_(std::move(data)),
      row_offsets_(std::move(row_offsets)) {}

namespace {

// The growable buffer rows are written into. Growing moves it, so writers
// address it by position, never by pointer.
class RowSink {
 public:
  explicit RowSink(arrow::MemoryPool* pool) : pool_(pool) {}

  arrow::Status Init(int64_t capacity) {
    ARROW_ASSIGN_OR_RAISE(buffer_, arrow::AllocateResizableBuffer(0, pool_));
    return Reserve(capacity);
  }

  int64_t size() const { return size_; }

  // Appends `length` zero bytes (a multiple of 8) and returns where they start.
  arrow::Result<int64_t> AppendZeros(int64_t length) {
    ARROW_RETURN_NOT_OK(Reserve(length));
    const int64_t start = size_;
    std::memset(data_ + start, 0, length);
    size_ += length;
    return start;
  }

  // Appends `length` bytes, zero-padded to 8, and returns where they start.
  arrow::Result<int64_t> AppendPadded(const void* bytes, int64_t length) {
    const int64_t padded = arrow::bit_util::RoundUpToMultipleOf8(length);
    ARROW_RETURN_NOT_OK(Reserve(padded));
    const int64_t start = size_;
    if (length > 0) std::memcpy(data_ + start, bytes, length);
    std::memset(data_ + start + length, 0, padded - length);
    size_ += padded;
    return start;
  }

  // Copies `width` bytes into the slot at `position`.
  void StoreBytes(int64_t position, const void* bytes, int width) {
    std::memcpy(data_ + position, bytes, width);
  }

  void StoreWord(int64_t position, uint64_t word) { StoreBytes(position, &word, sizeof(word)); }

  // Sets bit `index` of the null bitset at `bitset`.
  void SetNull(int64_t bitset, int64_t index) {
    const int64_t position = bitset + (index / 64) * 8;
    uint64_t word;
    std::memcpy(&word, data_ + position, sizeof(word));
    StoreWord(position, word | (uint64_t{1} << (index % 64)));
  }

  // Points the slot at `slot` to the `length` bytes at `start`, counting the
  // offset from `base`, the start of the slot's row or array.
  arrow::Status StoreVariable(int64_t base, int64_t slot, int64_t start, int64_t length) {
    const int64_t offset = start - base;
    constexpr int64_t kMax = std::numeric_limits<uint32_t>::max();
    if (offset > kMax || length > kMax) {
      return arrow::Status::CapacityError("a row is larger than 4 GiB, the most its slots address");
    }
    StoreWord(slot, (static_cast<uint64_t>(offset) << 32) | static_cast<uint64_t>(length));
    return arrow::Status::OK();
  }

  arrow::Result<std::shared_ptr<arrow::Buffer>> Finish() {
    // No shrink: trimming would copy every row once more.
    ARROW_RETURN_NOT_OK(buffer_->Resize(size_, /*shrink_to_fit=*/false));
    return std::shared_ptr<arrow::Buffer>(std::move(buffer_));
  }

 private:
  arrow::Status Reserve(int64_t additional) {
    if (size_ + additional <= capacity_) return arrow::Status::OK();
    const int64_t capacity = std::max(capacity_ * 2, size_ + additional);
    ARROW_RETURN_NOT_OK(buffer_->Resize(capacity, /*shrink_to_fit=*/false));
    data_ = buffer_->mutable_data();
    capacity_ = capacity;
    return arrow::Status::OK();
  }

  arrow::MemoryPool* pool_;
  std::unique_ptr<arrow::ResizableBuffer> buffer_;
  uint8_t* data_ = nullptr;
  int64_t size_ = 0;
  int64_t capacity_ = 0;
};

// Writes the values of one array into rows. One encoder per column (and per
// nested child) is chosen once, so the type is dispatched per column, not per value.
class ValueEncoder {
 public:
  explicit ValueEncoder(std::shared_ptr<arrow::Array> array)
      : array_(std::move(array)),
        validity_(array_->null_bitmap_data()),
        offset_(array_->offset()) {}
  virtual ~ValueEncoder() = default;

  virtual bool IsNull(int64_t i) const {
    return validity_ != nullptr && !arrow::bit_util::GetBit(validity_, offset_ + i);
  }

  // Writes non-null value `i` into the slot at `slot` of the row or array
  // starting at `base`; variable-length bytes go to the end of the sink.
  virtual arrow::Status Encode(int64_t i, int64_t base, int64_t slot, RowSink* sink) const = 0;

 protected:
  // Returns the values buffer, advanced to the array's first value.
  const uint8_t* Values(int width) const {
    const auto& buffer = array_->data()->buffers[1];
    return buffer == nullptr ? nullptr : buffer->data() + offset_ * width;
  }

  std::shared_ptr<arrow::Array> array_;
  const uint8_t* validity_;
  int64_t offset_;
};

using Encoders = std::vector<std::unique_ptr<ValueEncoder>>;

arrow::Result<std::unique_ptr<ValueEncoder>> MakeEncoder(
    const std::shared_ptr<arrow::Array>& array);

// Writes row `i` of `fields` as a row (or nested row) and returns where it starts.
arrow::Result<int64_t> EncodeRow(const Encoders& fields, int64_t i, RowSink* sink) {
  const int num_fields = static_cast<int>(fields.size());
  ARROW_ASSIGN_OR_RAISE(const int64_t start, sink->AppendZeros(RowView::FixedSize(num_fields)));
  for (int k = 0; k < num_fields; ++k) {
    if (fields[k]->IsNull(i)) {
      sink->SetNull(start, k);
    } else {
      ARROW_RETURN_NOT_OK(
          fields[k]->Encode(i, start, start + RowView::SlotOffset(num_fields, k), sink));
    }
  }
  return start;
}

class NullEncoder : public ValueEncoder {
 public:
  using ValueEncoder::ValueEncoder;
  bool IsNull(int64_t) const override { return true; }
  arrow::Status Encode(int64_t, int64_t, int64_t, RowSink*) const override {
    return arrow::Status::OK();
  }
};

class BoolEncoder : public ValueEncoder {
 public:
  explicit BoolEncoder(std::shared_ptr<arrow::Array> array)
      : ValueEncoder(std::move(array)), bits_(array_->data()->buffers[1]->data()) {}
  arrow::Status Encode(int64_t i, int64_t, int64_t slot, RowSink* sink) const override {
    sink->StoreWord(slot, arrow::bit_util::GetBit(bits_, offset_ + i) ? 1 : 0);
    return arrow::Status::OK();
  }

 private:
  const uint8_t* bits_;
};

// A fixed-width value of kWidth <= 8 bytes, copied into its slot.
template <int kWidth>
class SlotEncoder : public ValueEncoder {
 public:
  explicit SlotEncoder(std::shared_ptr<arrow::Array> array)
      : ValueEncoder(std::move(array)), values_(Values(kWidth)) {}
  arrow::Status Encode(int64_t i, int64_t, int64_t slot, RowSink* sink) const override {
    sink->StoreBytes(slot, values_ + i * kWidth, kWidth);
    return arrow::Status::OK();
  }

 private:
  const uint8_t* values_;
};

// A fixed-width value wider than a slot (decimals, fixed-size binary,
// month-day-nano intervals), copied into the variable-length area.
class WideEncoder : public ValueEncoder {
 public:
  WideEncoder(std::shared_ptr<arrow::Array> array, int width)
      : ValueEncoder(std::move(array)), width_(width), values_(Values(width)) {}
  arrow::Status Encode(int64_t i, int64_t base, int64_t slot, RowSink* sink) const override {
    ARROW_ASSIGN_OR_RAISE(const int64_t start, sink->AppendPadded(values_ + i * width_, width_));
    return sink->StoreVariable(base, slot, start, width_);
  }

 private:
  int width_;
  const uint8_t* values_;
};

// Binary and string values of any offset width, and views.
template <typename ArrayType>
class BinaryEncoder : public ValueEncoder {
 public:
  using ValueEncoder::ValueEncoder;
  arrow::Status Encode(int64_t i, int64_t base, int64_t slot, RowSink* sink) const override {
    const std::string_view value = static_cast<const ArrayType&>(*array_).GetView(i);
    ARROW_ASSIGN_OR_RAISE(const int64_t start, sink->AppendPadded(value.data(), value.size()));
    return sink->StoreVariable(base, slot, start, static_cast<int64_t>(value.size()));
  }
};

class StructEncoder : public ValueEncoder {
 public:
  StructEncoder(std::shared_ptr<arrow::Array> array, Encoders fields)
      : ValueEncoder(std::move(array)), fields_(std::move(fields)) {}
  arrow::Status Encode(int64_t i, int64_t base, int64_t slot, RowSink* sink) const override {
    ARROW_ASSIGN_OR_RAISE(const int64_t start, EncodeRow(fields_, i, sink));
    return sink->StoreVariable(base, slot, start, sink->size() - start);
  }

 private:
  Encoders fields_;  // over the struct's fields, sliced like the struct
};

// Lists of any kind (and maps, lists of key-value structs) as nested arrays.
template <typename ArrayType>
class ListEncoder : public ValueEncoder {
 public:
  ListEncoder(std::shared_ptr<arrow::Array> array, std::unique_ptr<ValueEncoder> elements)
      : ValueEncoder(std::move(array)), elements_(std::move(elements)) {}
  arrow::Status Encode(int64_t i, int64_t base, int64_t slot, RowSink* sink) const override {
    const auto& list = static_cast<const ArrayType&>(*array_);
    const int64_t first = list.value_offset(i);
    const int64_t count = list.value_length(i);
    ARROW_ASSIGN_OR_RAISE(const int64_t start, sink->AppendZeros(ArrayView::FixedSize(count)));
    sink->StoreWord(start, static_cast<uint64_t>(count));
    const int64_t bitset = start + 8;
    const int64_t slots = bitset + SlotView::BitsetBytes(count);
    for (int64_t e = 0; e < count; ++e) {
      if (elements_->IsNull(first + e)) {
        sink->SetNull(bitset, e);
      } else {
        ARROW_RETURN_NOT_OK(elements_->Encode(first + e, start, slots + 8 * e, sink));
      }
    }
    return sink->StoreVariable(base, slot, start, sink->size() - start);
  }

 private:
  std::unique_ptr<ValueEncoder> elements_;  // over the unsliced values; offsets index it
};

// Dictionary-encoded values, written decoded.
class DictionaryEncoder : public ValueEncoder {
 public:
  DictionaryEncoder(std::shared_ptr<arrow::Array> array, std::unique_ptr<ValueEncoder> values)
      : ValueEncoder(std::move(array)), values_(std::move(values)) {}
  bool IsNull(int64_t i) const override {
    return ValueEncoder::IsNull(i) || values_->IsNull(Index(i));
  }
  arrow::Status Encode(int64_t i, int64_t base, int64_t slot, RowSink* sink) const override {
    return values_->Encode(Index(i), base, slot, sink);
  }

 private:
  int64_t Index(int64_t i) const {
    return static_cast<const arrow::DictionaryArray&>(*array_).GetValueIndex(i);
  }

  std::unique_ptr<ValueEncoder> values_;  // over the dictionary
};

template <typename ArrayType>
arrow::Result<std::unique_ptr<ValueEncoder>> MakeListEncoder(
    const std::shared_ptr<arrow::Array>& array) {
  ARROW_ASSIGN_OR_RAISE(auto elements, MakeEncoder(static_cast<const ArrayType&>(*array).values()));
  return std::make_unique<ListEncoder<ArrayType>>(array, std::move(elements));
}

arrow::Result<std::unique_ptr<ValueEncoder>> MakeStructEncoder(
    const std::shared_ptr<arrow::Array>& array) {
  const auto& struct_array = static_cast<const arrow::StructArray&>(*array);
  Encoders fields;
  for (int k = 0; k < struct_array.num_fields(); ++k) {
    ARROW_ASSIGN_OR_RAISE(auto field, MakeEncoder(struct_array.field(k)));
    fields.push_back(std::move(field));
  }
  return std::make_unique<StructEncoder>(array, std::move(fields));
}

arrow::Result<std::unique_ptr<ValueEncoder>> MakeEncoder(
    const std::shared_ptr<arrow::Array>& array) {
  const arrow::DataType& type = *array->type();
  switch (type.id()) {
    case arrow::Type::NA:
      return std::make_unique<NullEncoder>(array);
    case arrow::Type::BOOL:
      return std::make_unique<BoolEncoder>(array);
    case arrow::Type::INT8:
    case arrow::Type::UINT8:
      return std::make_unique<SlotEncoder<1>>(array);
    case arrow::Type::INT16:
    case arrow::Type::UINT16:
    case arrow::Type::HALF_FLOAT:
      return std::make_unique<SlotEncoder<2>>(array);
    case arrow::Type::INT32:
    case arrow::Type::UINT32:
    case arrow::Type::FLOAT:
    case arrow::Type::DATE32:
    case arrow::Type::TIME32:
    case arrow::Type::INTERVAL_MONTHS:
      return std::make_unique<SlotEncoder<4>>(array);
    case arrow::Type::INT64:
    case arrow::Type::UINT64:
    case arrow::Type::DOUBLE:
    case arrow::Type::DATE64:
    case arrow::Type::TIMESTAMP:
    case arrow::Type::TIME64:
    case arrow::Type::DURATION:
    case arrow::Type::INTERVAL_DAY_TIME:
      return std::make_unique<SlotEncoder<8>>(array);
    case arrow::Type::INTERVAL_MONTH_DAY_NANO:
    case arrow::Type::FIXED_SIZE_BINARY:
    case arrow::Type::DECIMAL32:
    case arrow::Type::DECIMAL64:
    case arrow::Type::DECIMAL128:
    case arrow::Type::DECIMAL256:
      return std::make_unique<WideEncoder>(
          array, static_cast<const arrow::FixedWidthType&>(type).byte_width());
    case arrow::Type::STRING:
    case arrow::Type::BINARY:
      return std::make_unique<BinaryEncoder<arrow::BinaryArray>>(array);
    case arrow::Type::LARGE_STRING:
    case arrow::Type::LARGE_BINARY:
      return std::make_unique<BinaryEncoder<arrow::LargeBinaryArray>>(array);
    case arrow::Type::STRING_VIEW:
    case arrow::Type::BINARY_VIEW:
      return std::make_unique<BinaryEncoder<arrow::BinaryViewArray>>(array);
    case arrow::Type::LIST:
    case arrow::Type::MAP:  // a MapArray is a ListArray of key-value structs
      return MakeListEncoder<arrow::ListArray>(array);
    case arrow::Type::LARGE_LIST:
      return MakeListEncoder<arrow::LargeListArray>(array);
    case arrow::Type::FIXED_SIZE_LIST:
      return MakeListEncoder<arrow::FixedSizeListArray>(array);
    case arrow::Type::STRUCT:
      return MakeStructEncoder(array);
    case arrow::Type::DICTIONARY: {
      ARROW_ASSIGN_OR_RAISE(
          auto values,
          MakeEncoder(static_cast<const arrow::DictionaryArray&>(*array).dictionary()));
      return std::make_unique<DictionaryEncoder>(array, std::move(values));
    }
    default:
      return arrow::Status::NotImplemented("no row layout for type ", type.ToString());
  }
}

}  // namespace

arrow::Result<RowBatch> ColumnarToRows(const arrow::RecordBatch& batch, arrow::MemoryPool* pool) {
  const int num_fields = batch.num_columns();
  Encoders fields;
  for (int k = 0; k < num_fields; ++k) {
    auto field = MakeEncoder(batch.column(k));
    if (!field.ok()) {
      return field.status().WithMessage("ColumnarToRows: column '",
                                        batch.schema()->field(k)->name(),
                                        "': ", field.status().message());
    }
    fields.push_back(std::move(field).ValueUnsafe());
  }
  RowSink sink(pool);
  // The fixed parts are known; variable-length values grow the buffer as needed.
  ARROW_RETURN_NOT_OK(sink.Init(batch.num_rows() * RowView::FixedSize(num_fields)));
  std::vector<int64_t> row_offsets(batch.num_rows() + 1);
  for (int64_t i = 0; i < batch.num_rows(); ++i) {
    ARROW_ASSIGN_OR_RAISE(row_offsets[i], EncodeRow(fields, i, &sink));
  }
  row_offsets.back() = sink.size();
  ARROW_ASSIGN_OR_RAISE(auto data, sink.Finish());
  return RowBatch(batch.schema(), std::move(data), std::move(row_offsets));
}

}  // namespace quiver::exec::rows
