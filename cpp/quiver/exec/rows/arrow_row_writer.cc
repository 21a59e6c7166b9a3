#include "quiver/exec/rows/arrow_row_writer.h"

#include <cstring>
#include <string_view>
#include <utility>

#include <arrow/array.h>
#include <arrow/builder.h>
#include <arrow/compute/cast.h>
#include <arrow/type.h>
#include <arrow/type_traits.h>

namespace quiver::exec::rows {

namespace {

using Appender = ArrowRowWriter::Appender;

template <typename T>
using PlainBuilder = typename arrow::TypeTraits<T>::BuilderType;

// Rows hold dictionary values decoded; a dictionary builder encodes them again.
template <typename T>
using DictionaryBuilder = arrow::DictionaryBuilder<T>;

// A fixed-width value of type CType, read from its slot.
template <typename Builder, typename CType>
Appender SlotAppender(arrow::ArrayBuilder* builder) {
  auto* typed = static_cast<Builder*>(builder);
  return [typed](const SlotView& values, int64_t i) {
    if (values.IsNull(i)) return typed->AppendNull();
    return typed->Append(values.GetFixed<CType>(i));
  };
}

// A fixed-width value wider than a slot, read from the variable-length area.
template <typename Builder, typename CType>
Appender WideAppender(arrow::ArrayBuilder* builder) {
  auto* typed = static_cast<Builder*>(builder);
  return [typed](const SlotView& values, int64_t i) {
    if (values.IsNull(i)) return typed->AppendNull();
    CType value;
    std::memcpy(&value, values.GetBytes(i).data(), sizeof(value));
    return typed->Append(value);
  };
}

// Bytes from the variable-length area: binary, strings, fixed-size binary, decimals.
template <typename Builder>
Appender BytesAppender(arrow::ArrayBuilder* builder) {
  auto* typed = static_cast<Builder*>(builder);
  return [typed](const SlotView& values, int64_t i) {
    if (values.IsNull(i)) return typed->AppendNull();
    return typed->Append(values.GetBytes(i));
  };
}

Appender NullAppender(arrow::ArrayBuilder* builder) {
  return [builder](const SlotView&, int64_t) { return builder->AppendNull(); };
}

// Returns the appender of a non-nested type, whose builder is BuilderFor<T>
// (the plain builder of T, or the dictionary builder with values of T).
template <template <typename> class BuilderFor>
arrow::Result<Appender> MakeLeafAppender(const arrow::DataType& type,
                                         arrow::ArrayBuilder* builder) {
  switch (type.id()) {
#define QUIVER_SLOT_CASE(TYPE) \
  case TYPE::type_id:          \
    return SlotAppender<BuilderFor<TYPE>, TYPE::c_type>(builder);
#define QUIVER_BYTES_CASE(TYPE) \
  case TYPE::type_id:           \
    return BytesAppender<BuilderFor<TYPE>>(builder);

    QUIVER_SLOT_CASE(arrow::BooleanType)
    QUIVER_SLOT_CASE(arrow::Int8Type)
    QUIVER_SLOT_CASE(arrow::Int16Type)
    QUIVER_SLOT_CASE(arrow::Int32Type)
    QUIVER_SLOT_CASE(arrow::Int64Type)
    QUIVER_SLOT_CASE(arrow::UInt8Type)
    QUIVER_SLOT_CASE(arrow::UInt16Type)
    QUIVER_SLOT_CASE(arrow::UInt32Type)
    QUIVER_SLOT_CASE(arrow::UInt64Type)
    QUIVER_SLOT_CASE(arrow::FloatType)
    QUIVER_SLOT_CASE(arrow::DoubleType)
    QUIVER_SLOT_CASE(arrow::Date32Type)
    QUIVER_SLOT_CASE(arrow::Date64Type)
    QUIVER_SLOT_CASE(arrow::TimestampType)
    QUIVER_SLOT_CASE(arrow::Time32Type)
    QUIVER_SLOT_CASE(arrow::Time64Type)
    QUIVER_SLOT_CASE(arrow::DurationType)
    QUIVER_SLOT_CASE(arrow::MonthIntervalType)
    QUIVER_SLOT_CASE(arrow::DayTimeIntervalType)
    QUIVER_BYTES_CASE(arrow::BinaryType)
    QUIVER_BYTES_CASE(arrow::StringType)
    QUIVER_BYTES_CASE(arrow::LargeBinaryType)
    QUIVER_BYTES_CASE(arrow::LargeStringType)
    QUIVER_BYTES_CASE(arrow::BinaryViewType)
    QUIVER_BYTES_CASE(arrow::StringViewType)
    QUIVER_BYTES_CASE(arrow::FixedSizeBinaryType)
    QUIVER_BYTES_CASE(arrow::Decimal32Type)
    QUIVER_BYTES_CASE(arrow::Decimal64Type)
    QUIVER_BYTES_CASE(arrow::Decimal128Type)
    QUIVER_BYTES_CASE(arrow::Decimal256Type)

#undef QUIVER_SLOT_CASE
#undef QUIVER_BYTES_CASE

    case arrow::Type::INTERVAL_MONTH_DAY_NANO:
      return WideAppender<BuilderFor<arrow::MonthDayNanoIntervalType>,
                          arrow::MonthDayNanoIntervalType::c_type>(builder);
    default:
      return arrow::Status::NotImplemented("no row layout for type ", type.ToString());
  }
}

arrow::Result<Appender> MakeAppender(const arrow::DataType& type, arrow::ArrayBuilder* builder);

arrow::Result<Appender> MakeStructAppender(const arrow::StructType& type,
                                           arrow::ArrayBuilder* builder) {
  auto* typed = static_cast<arrow::StructBuilder*>(builder);
  std::vector<Appender> fields;
  for (int k = 0; k < type.num_fields(); ++k) {
    ARROW_ASSIGN_OR_RAISE(auto field,
                          MakeAppender(*type.field(k)->type(), typed->field_builder(k)));
    fields.push_back(std::move(field));
  }
  return [typed, fields = std::move(fields)](const SlotView& values, int64_t i) -> arrow::Status {
    if (values.IsNull(i)) return typed->AppendNull();
    ARROW_RETURN_NOT_OK(typed->Append());
    const int num_fields = static_cast<int>(fields.size());
    const RowView row = values.GetRow(i, num_fields);
    for (int k = 0; k < num_fields; ++k) ARROW_RETURN_NOT_OK(fields[k](row, k));
    return arrow::Status::OK();
  };
}

// Lists of any kind: Builder is ListBuilder, LargeListBuilder or FixedSizeListBuilder.
template <typename Builder>
arrow::Result<Appender> MakeListAppender(const arrow::BaseListType& type,
                                         arrow::ArrayBuilder* builder) {
  auto* typed = static_cast<Builder*>(builder);
  ARROW_ASSIGN_OR_RAISE(Appender elements,
                        MakeAppender(*type.value_type(), typed->value_builder()));
  return
      [typed, elements = std::move(elements)](const SlotView& values, int64_t i) -> arrow::Status {
        if (values.IsNull(i)) return typed->AppendNull();
        ARROW_RETURN_NOT_OK(typed->Append());
        const ArrayView array = values.GetArray(i);
        for (int64_t e = 0; e < array.length(); ++e) ARROW_RETURN_NOT_OK(elements(array, e));
        return arrow::Status::OK();
      };
}

// A map is stored as an array of (key, value) rows.
arrow::Result<Appender> MakeMapAppender(const arrow::MapType& type, arrow::ArrayBuilder* builder) {
  auto* typed = static_cast<arrow::MapBuilder*>(builder);
  ARROW_ASSIGN_OR_RAISE(Appender keys, MakeAppender(*type.key_type(), typed->key_builder()));
  ARROW_ASSIGN_OR_RAISE(Appender items, MakeAppender(*type.item_type(), typed->item_builder()));
  return [typed, keys = std::move(keys), items = std::move(items)](const SlotView& values,
                                                                   int64_t i) -> arrow::Status {
    if (values.IsNull(i)) return typed->AppendNull();
    ARROW_RETURN_NOT_OK(typed->Append());
    const ArrayView entries = values.GetArray(i);
    for (int64_t e = 0; e < entries.length(); ++e) {
      const RowView entry = entries.GetRow(e, 2);
      ARROW_RETURN_NOT_OK(keys(entry, 0));
      ARROW_RETURN_NOT_OK(items(entry, 1));
    }
    return arrow::Status::OK();
  };
}

arrow::Result<Appender> MakeDictionaryAppender(const arrow::DictionaryType& type,
                                               arrow::ArrayBuilder* builder) {
  // MakeBuilder made a DictionaryBuilder<T> of the value type T (it refuses
  // value types it has no dictionary builder for).
  const arrow::DataType& value_type = *type.value_type();
  if (value_type.id() == arrow::Type::NA) return NullAppender(builder);
  return MakeLeafAppender<DictionaryBuilder>(value_type, builder);
}

arrow::Result<Appender> MakeAppender(const arrow::DataType& type, arrow::ArrayBuilder* builder) {
  switch (type.id()) {
    case arrow::Type::NA:
      return NullAppender(builder);
    case arrow::Type::HALF_FLOAT:  // not a dictionary value type, so not in MakeLeafAppender
      return SlotAppender<arrow::HalfFloatBuilder, uint16_t>(builder);
    case arrow::Type::STRUCT:
      return MakeStructAppender(static_cast<const arrow::StructType&>(type), builder);
    case arrow::Type::LIST:
      return MakeListAppender<arrow::ListBuilder>(static_cast<const arrow::ListType&>(type),
                                                  builder);
    case arrow::Type::LARGE_LIST:
      return MakeListAppender<arrow::LargeListBuilder>(
          static_cast<const arrow::LargeListType&>(type), builder);
    case arrow::Type::FIXED_SIZE_LIST:
      return MakeListAppender<arrow::FixedSizeListBuilder>(
          static_cast<const arrow::FixedSizeListType&>(type), builder);
    case arrow::Type::MAP:
      return MakeMapAppender(static_cast<const arrow::MapType&>(type), builder);
    case arrow::Type::DICTIONARY:
      return MakeDictionaryAppender(static_cast<const arrow::DictionaryType&>(type), builder);
    default:
      return MakeLeafAppender<PlainBuilder>(type, builder);
  }
}

}  // namespace

ArrowRowWriter::ArrowRowWriter(std::shared_ptr<arrow::Schema> schema, arrow::MemoryPool* pool)
    : schema_(std::move(schema)), pool_(pool) {}

arrow::Result<std::unique_ptr<ArrowRowWriter>> ArrowRowWriter::Make(
    std::shared_ptr<arrow::Schema> schema, arrow::MemoryPool* pool) {
  std::unique_ptr<ArrowRowWriter> writer(new ArrowRowWriter(std::move(schema), pool));
  ARROW_RETURN_NOT_OK(writer->Reset());
  return writer;
}

arrow::Status ArrowRowWriter::Reset() {
  builders_.clear();
  appenders_.clear();
  num_rows_ = 0;
  for (const auto& field : schema_->fields()) {
    auto status = [&]() -> arrow::Status {
      ARROW_ASSIGN_OR_RAISE(auto builder, arrow::MakeBuilder(field->type(), pool_));
      ARROW_ASSIGN_OR_RAISE(auto appender, MakeAppender(*field->type(), builder.get()));
      builders_.push_back(std::move(builder));
      appenders_.push_back(std::move(appender));
      return arrow::Status::OK();
    }();
    if (!status.ok()) {
      return status.WithMessage("ArrowRowWriter: field '", field->name(), "': ", status.message());
    }
  }
  return arrow::Status::OK();
}

arrow::Status ArrowRowWriter::CheckSchema(const RowBatch& rows) const {
  if (rows.schema() == schema_ || rows.schema()->Equals(*schema_, /*check_metadata=*/false)) {
    return arrow::Status::OK();
  }
  return arrow::Status::Invalid("ArrowRowWriter: rows of schema ", rows.schema()->ToString(),
                                " given to a writer of schema ", schema_->ToString());
}

arrow::Status ArrowRowWriter::Append(const RowBatch& rows, int64_t index) {
  ARROW_RETURN_NOT_OK(CheckSchema(rows));
  if (index < 0 || index >= rows.num_rows()) {
    return arrow::Status::IndexError("ArrowRowWriter: row ", index, " of a batch of ",
                                     rows.num_rows(), " rows");
  }
  return AppendRow(rows.row(index));
}

arrow::Status ArrowRowWriter::AppendRow(const RowView& row) {
  for (size_t k = 0; k < appenders_.size(); ++k) {
    auto status = appenders_[k](row, static_cast<int64_t>(k));
    if (!status.ok()) {
      // A row half appended leaves the columns of unequal length: start over.
      ARROW_RETURN_NOT_OK(Reset());
      return status.WithMessage(
          "ArrowRowWriter: field '", schema_->field(k)->name(),
          "' (the rows since the last flush are dropped): ", status.message());
    }
  }
  ++num_rows_;
  return arrow::Status::OK();
}

arrow::Status ArrowRowWriter::AppendAll(const RowBatch& rows) {
  ARROW_RETURN_NOT_OK(CheckSchema(rows));
  for (auto& builder : builders_) ARROW_RETURN_NOT_OK(builder->Reserve(rows.num_rows()));
  for (int64_t i = 0; i < rows.num_rows(); ++i) ARROW_RETURN_NOT_OK(AppendRow(rows.row(i)));
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> ArrowRowWriter::Flush() {
  std::vector<std::shared_ptr<arrow::Array>> columns;
  columns.reserve(builders_.size());
  for (size_t k = 0; k < builders_.size(); ++k) {
    ARROW_ASSIGN_OR_RAISE(auto column, builders_[k]->Finish());
    const auto& type = schema_->field(static_cast<int>(k))->type();
    if (!column->type()->Equals(*type)) {
      // MakeBuilder's dictionary builders pick signed indices of the smallest
      // width that fits; cast them to the schema's index type.
      ARROW_ASSIGN_OR_RAISE(column, arrow::compute::Cast(*column, type));
    }
    columns.push_back(std::move(column));
  }
  auto batch = arrow::RecordBatch::Make(schema_, num_rows_, std::move(columns));
  // Fresh builders, so that dictionaries do not carry values over to the next batch.
  ARROW_RETURN_NOT_OK(Reset());
  return batch;
}

}  // namespace quiver::exec::rows
