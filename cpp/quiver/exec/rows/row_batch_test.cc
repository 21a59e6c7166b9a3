#include "quiver/exec/rows/row_batch.h"

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/array.h>
#include <arrow/array/util.h>
#include <arrow/json/from_string.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>

#include "quiver/exec/rows/arrow_row_writer.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::exec::rows {
namespace {

struct Column {
  std::string name;
  std::shared_ptr<arrow::Array> array;
};

std::shared_ptr<arrow::Array> Json(const std::shared_ptr<arrow::DataType>& type,
                                   const std::string& json) {
  return arrow::json::ArrayFromJSONString(type, json).ValueOrDie();
}

std::shared_ptr<arrow::Array> DictJson(const std::shared_ptr<arrow::DataType>& type,
                                       const std::string& indices, const std::string& dictionary) {
  return arrow::json::DictArrayFromJSONString(type, indices, dictionary).ValueOrDie();
}

std::shared_ptr<arrow::RecordBatch> MakeBatch(const std::vector<Column>& columns) {
  std::vector<std::shared_ptr<arrow::Field>> fields;
  std::vector<std::shared_ptr<arrow::Array>> arrays;
  for (const auto& column : columns) {
    fields.push_back(arrow::field(column.name, column.array->type()));
    arrays.push_back(column.array);
  }
  const int64_t num_rows = columns.empty() ? 0 : columns[0].array->length();
  return arrow::RecordBatch::Make(arrow::schema(fields), num_rows, arrays);
}

// Five rows of every type with a row layout, nulls in each. Dictionaries list
// their values in order of first use from row 1 on, as a dictionary builder
// would, so that batch and slices come back equal.
std::vector<Column> AllTypes() {
  using arrow::field;
  const auto point =
      arrow::struct_({field("x", arrow::int64()), field("y", arrow::list(arrow::utf8()))});
  const auto inner = arrow::struct_(
      {field("d", arrow::float64()), field("t", arrow::timestamp(arrow::TimeUnit::MILLI, "UTC"))});
  const auto outer = arrow::struct_({field("l", arrow::list(arrow::int32())), field("s", inner)});
  const auto dict_strings = DictJson(arrow::dictionary(arrow::int32(), arrow::utf8()),
                                     "[0, 0, 1, 2, null]", R"(["red", "green", "blue"])");
  return {
      {"bool", Json(arrow::boolean(), "[true, false, null, true, false]")},
      {"int8", Json(arrow::int8(), "[1, -128, null, 127, 0]")},
      {"int16", Json(arrow::int16(), "[1, -32768, null, 32767, 0]")},
      {"int32", Json(arrow::int32(), "[1, -2147483648, null, 2147483647, 0]")},
      {"int64", Json(arrow::int64(), "[1, -9223372036854775808, null, 9223372036854775807, 0]")},
      {"uint8", Json(arrow::uint8(), "[1, 255, null, 0, 7]")},
      {"uint16", Json(arrow::uint16(), "[1, 65535, null, 0, 7]")},
      {"uint32", Json(arrow::uint32(), "[1, 4294967295, null, 0, 7]")},
      {"uint64", Json(arrow::uint64(), "[1, 18446744073709551615, null, 0, 7]")},
      {"float16", Json(arrow::float16(), "[1.5, -2, null, 0, 65504]")},
      {"float32", Json(arrow::float32(), "[1.5, -0.0, null, 3.25, 1e30]")},
      {"float64", Json(arrow::float64(), "[1.5, -0.0, null, 3.25, 1e300]")},
      {"utf8", Json(arrow::utf8(), R"(["a", "", null, "héllo", "a string longer than eight"])")},
      {"large_utf8", Json(arrow::large_utf8(), R"(["", "b", null, "ccccccccc", ""])")},
      {"binary", Json(arrow::binary(), R"(["ab", "", null, "cdefghijk", "x"])")},
      {"large_binary", Json(arrow::large_binary(), R"(["ab", null, "", "cdefghijk", "x"])")},
      {"utf8_view",
       Json(arrow::utf8_view(), R"(["short", "", null, "a string over twelve", "z"])")},
      {"binary_view",
       Json(arrow::binary_view(), R"(["", null, "q", "a string over twelve", "z"])")},
      {"fixed_binary", Json(arrow::fixed_size_binary(3), R"(["abc", null, "def", "ghi", "jkl"])")},
      {"date32", Json(arrow::date32(), "[0, 18000, null, -1, 19000]")},
      {"date64", Json(arrow::date64(), "[0, 86400000, null, -86400000, 1555200000000]")},
      {"ts_s", Json(arrow::timestamp(arrow::TimeUnit::SECOND), "[0, 1, null, -1, 1700000000]")},
      {"ts_ms_utc",
       Json(arrow::timestamp(arrow::TimeUnit::MILLI, "UTC"), "[0, 1700000000123, null, -5, 1]")},
      {"ts_us_ny", Json(arrow::timestamp(arrow::TimeUnit::MICRO, "America/New_York"),
                        "[0, 1700000000123456, null, -5, 1]")},
      {"ts_ns_offset", Json(arrow::timestamp(arrow::TimeUnit::NANO, "+05:30"),
                            "[0, 1700000000123456789, null, -5, 1]")},
      {"time32_s", Json(arrow::time32(arrow::TimeUnit::SECOND), "[0, 3600, null, 86399, 1]")},
      {"time32_ms", Json(arrow::time32(arrow::TimeUnit::MILLI), "[0, 3600000, null, 1, 2]")},
      {"time64_us", Json(arrow::time64(arrow::TimeUnit::MICRO), "[0, 3600000000, null, 1, 2]")},
      {"time64_ns", Json(arrow::time64(arrow::TimeUnit::NANO), "[0, 3600000000000, null, 1, 2]")},
      {"duration_s", Json(arrow::duration(arrow::TimeUnit::SECOND), "[0, -1, null, 60, 2]")},
      {"duration_ms", Json(arrow::duration(arrow::TimeUnit::MILLI), "[0, -1, null, 60, 2]")},
      {"duration_us", Json(arrow::duration(arrow::TimeUnit::MICRO), "[0, -1, null, 60, 2]")},
      {"duration_ns", Json(arrow::duration(arrow::TimeUnit::NANO), "[0, -1, null, 60, 2]")},
      {"months", Json(arrow::month_interval(), "[0, -1, null, 12, 2]")},
      {"day_time", Json(arrow::day_time_interval(), "[[0, 0], [1, -2], null, [3, 4], [5, 6]]")},
      {"month_day_nano", Json(arrow::month_day_nano_interval(),
                              "[[0, 0, 0], [1, -2, 3], null, [4, 5, 6], [7, 8, 9]]")},
      {"decimal128",
       Json(arrow::decimal128(10, 2), R"(["1.23", "-4.56", null, "0.00", "99999999.99"])")},
      {"decimal256",
       Json(arrow::decimal256(40, 5),
            R"(["1.23000", "-123456789012345678901234567890.12345", null, "0.00000", "7.50000"])")},
      {"null", Json(arrow::null(), "[null, null, null, null, null]")},
      {"list", Json(arrow::list(arrow::int32()), "[[1, 2], [], null, [null, 3], [4]]")},
      {"large_list",
       Json(arrow::large_list(arrow::utf8()), R"([["a", ""], null, [], ["b", null, "c"], ["d"]])")},
      {"fixed_list", Json(arrow::fixed_size_list(arrow::int16(), 3),
                          "[[1, 2, 3], null, [4, null, 6], [7, 8, 9], [0, 0, 0]]")},
      {"struct", Json(arrow::struct_({field("a", arrow::int32()), field("b", arrow::utf8())}),
                      R"([{"a": 1, "b": "x"}, null, {"a": null, "b": ""}, {"a": 3, "b": null},
                          {"a": 4, "b": "yy"}])")},
      {"list_of_struct", Json(arrow::list(point),
                              R"([[{"x": 1, "y": ["a"]}, null, {"x": null, "y": []}], [], null,
                                  [{"x": 2, "y": null}], [{"x": 3, "y": ["b", "c"]}]])")},
      {"struct_of_list", Json(outer,
                              R"([{"l": [1, null], "s": {"d": 1.5, "t": 5}}, null,
                                  {"l": [], "s": null}, {"l": null, "s": {"d": null, "t": null}},
                                  {"l": [7], "s": {"d": -2.0, "t": 1700000000000}}])")},
      {"map", Json(arrow::map(arrow::utf8(), arrow::int32()),
                   R"([[["a", 1], ["b", null]], null, [], [["c", 3]], [["d", 4], ["e", 5]]])")},
      {"dict_utf8", dict_strings},
      {"dict_int64", DictJson(arrow::dictionary(arrow::int8(), arrow::int64()),
                              "[0, 0, 1, null, 1]", "[10, 20]")},
      {"struct_of_dict", arrow::StructArray::Make({dict_strings}, {"color"}).ValueOrDie()},
  };
}

// Converts `batch` to rows and back, and checks that nothing changed.
void ExpectRoundTrip(const std::shared_ptr<arrow::RecordBatch>& batch) {
  ASSERT_OK_AND_ASSIGN(RowBatch rows, ColumnarToRows(*batch));
  ASSERT_EQ(rows.num_rows(), batch->num_rows());
  ASSERT_OK_AND_ASSIGN(auto writer, ArrowRowWriter::Make(batch->schema()));
  ASSERT_OK(writer->AppendAll(rows));
  EXPECT_EQ(writer->num_rows(), batch->num_rows());
  ASSERT_OK_AND_ASSIGN(auto result, writer->Flush());
  ASSERT_OK(result->ValidateFull());
  EXPECT_TRUE(result->Equals(*batch)) << "expected:\n"
                                      << batch->ToString() << "got:\n"
                                      << result->ToString();
}

TEST(RowBatchTest, RoundTripsEachType) {
  for (const auto& column : AllTypes()) {
    SCOPED_TRACE(column.name);
    const auto batch = MakeBatch({column});
    ExpectRoundTrip(batch);
    ExpectRoundTrip(batch->Slice(1, batch->num_rows() - 2));
  }
}

TEST(RowBatchTest, RoundTripsAllTypesTogether) {
  const auto batch = MakeBatch(AllTypes());
  ExpectRoundTrip(batch);
  ExpectRoundTrip(batch->Slice(1, batch->num_rows() - 2));
}

TEST(RowBatchTest, RoundTripsZeroRows) {
  const auto batch = MakeBatch(AllTypes());
  ASSERT_OK_AND_ASSIGN(auto empty, arrow::RecordBatch::MakeEmpty(batch->schema()));
  ExpectRoundTrip(empty);
  ASSERT_OK_AND_ASSIGN(RowBatch rows, ColumnarToRows(*empty));
  EXPECT_EQ(rows.num_rows(), 0);
  EXPECT_EQ(rows.data()->size(), 0);
  // A zero-length slice keeps its dictionaries, which no rows refer to: those
  // come back empty.
  const auto slice = batch->Slice(2, 0);
  ASSERT_OK_AND_ASSIGN(rows, ColumnarToRows(*slice));
  ASSERT_OK_AND_ASSIGN(auto writer, ArrowRowWriter::Make(slice->schema()));
  ASSERT_OK(writer->AppendAll(rows));
  ASSERT_OK_AND_ASSIGN(auto result, writer->Flush());
  EXPECT_TRUE(result->Equals(*empty)) << result->ToString();
}

TEST(RowBatchTest, RoundTripsManyColumns) {
  // 130 fields: the null bitset spans three words.
  std::vector<Column> columns;
  for (int k = 0; k < 130; ++k) {
    std::string json = "[";
    for (int row = 0; row < 4; ++row) {
      json += (row > 0 ? ", " : "") +
              ((row + k) % 3 == 0 ? std::string("null") : std::to_string(k * 10 + row));
    }
    columns.push_back({"c" + std::to_string(k), Json(arrow::int32(), json + "]")});
  }
  const auto batch = MakeBatch(columns);
  ExpectRoundTrip(batch);
  ExpectRoundTrip(batch->Slice(1, 2));
}

std::string RandomString(std::mt19937_64& random) {
  static constexpr char kLetters[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string value(random() % 40, ' ');
  for (char& c : value) c = kLetters[random() % (sizeof(kLetters) - 1)];
  return value;
}

// Several thousand rows of random values, nulls about one in eight.
std::shared_ptr<arrow::RecordBatch> RandomBatch(int64_t num_rows) {
  std::mt19937_64 random(20260401);
  auto maybe_null = [&](const std::string& value) {
    return random() % 8 == 0 ? std::string("null") : value;
  };
  std::string ints, doubles, strings, lists, structs, timestamps, decimals;
  std::vector<int> colors(num_rows);
  for (int64_t row = 0; row < num_rows; ++row) {
    const std::string sep = row > 0 ? ", " : "";
    ints += sep + maybe_null(std::to_string(static_cast<int64_t>(random())));
    doubles += sep + maybe_null(std::to_string(static_cast<double>(random() % 1000000) / 7.0));
    strings += sep + maybe_null("\"" + RandomString(random) + "\"");
    std::string list = "[";
    for (uint64_t e = 0, n = random() % 6; e < n; ++e) {
      list += (e > 0 ? ", " : "") + maybe_null(std::to_string(static_cast<int32_t>(random())));
    }
    lists += sep + maybe_null(list + "]");
    structs +=
        sep + maybe_null(R"({"a": )" + maybe_null(std::to_string(random() % 1000)) + R"(, "b": )" +
                         maybe_null("\"" + RandomString(random) + "\"") + "}");
    timestamps += sep + maybe_null(std::to_string(random() % 4000000000000));
    decimals += sep + maybe_null("\"" + std::to_string(random() % 100000) + "." +
                                 std::to_string(random() % 10) + "\"");
    colors[row] = static_cast<int>(random() % 25);
  }
  // Dictionary values in order of first use, the first and last rows repeating
  // row 1, so that the batch and its Slice(1, n - 2) use the same dictionary.
  colors[0] = colors[num_rows - 1] = colors[1];
  std::map<int, int> index_of;
  std::string indices, dictionary;
  for (int64_t row = 0; row < num_rows; ++row) {
    const bool null = row > 1 && row < num_rows - 1 && random() % 8 == 0;
    if (!null && index_of.emplace(colors[row], static_cast<int>(index_of.size())).second) {
      dictionary += std::string(dictionary.empty() ? "" : ", ") + "\"color" +
                    std::to_string(colors[row]) + "\"";
    }
    indices += (row > 0 ? ", " : "") + (null ? "null" : std::to_string(index_of[colors[row]]));
  }
  return MakeBatch({
      {"i", Json(arrow::int64(), "[" + ints + "]")},
      {"d", Json(arrow::float64(), "[" + doubles + "]")},
      {"s", Json(arrow::utf8(), "[" + strings + "]")},
      {"l", Json(arrow::list(arrow::int32()), "[" + lists + "]")},
      {"st", Json(arrow::struct_(
                      {arrow::field("a", arrow::int16()), arrow::field("b", arrow::large_utf8())}),
                  "[" + structs + "]")},
      {"ts",
       Json(arrow::timestamp(arrow::TimeUnit::MICRO, "Europe/Paris"), "[" + timestamps + "]")},
      {"dec", Json(arrow::decimal128(12, 1), "[" + decimals + "]")},
      {"color", DictJson(arrow::dictionary(arrow::int32(), arrow::utf8()), "[" + indices + "]",
                         "[" + dictionary + "]")},
  });
}

TEST(RowBatchTest, RoundTripsRandomRows) {
  const auto batch = RandomBatch(5000);
  ASSERT_EQ(batch->num_rows(), 5000);
  ExpectRoundTrip(batch);
  ExpectRoundTrip(batch->Slice(1, batch->num_rows() - 2));
}

TEST(RowBatchTest, LaysOutRowsRowMajor) {
  const auto batch = MakeBatch({
      {"a", Json(arrow::int64(), "[7, null, -1]")},
      {"b", Json(arrow::utf8(), R"(["hello world!", null, ""])")},
      {"c", Json(arrow::int32(), "[-3, 5, null]")},
      {"d", Json(arrow::list(arrow::int32()), "[[1, null, 3], [], null]")},
  });
  ASSERT_OK_AND_ASSIGN(RowBatch rows, ColumnarToRows(*batch));
  ASSERT_EQ(rows.num_rows(), 3);

  // One null word, then four slots.
  EXPECT_EQ(RowView::SlotOffset(4, 0), 8);
  EXPECT_EQ(RowView::SlotOffset(4, 2), 24);
  EXPECT_EQ(RowView::FixedSize(4), 40);

  // Rows lie one after the other, each a multiple of 8 bytes.
  const auto& offsets = rows.row_offsets();
  ASSERT_EQ(offsets.size(), 4u);
  EXPECT_EQ(offsets[0], 0);
  for (int64_t i = 0; i < rows.num_rows(); ++i) {
    EXPECT_EQ(rows.row_data(i), rows.data()->data() + offsets[i]);
    EXPECT_EQ(offsets[i + 1], offsets[i] + rows.row_size(i));
    EXPECT_EQ(rows.row_size(i) % 8, 0);
  }
  EXPECT_EQ(rows.data()->size(), offsets.back());

  // Row 0, read straight from its bytes.
  const uint8_t* row = rows.row_data(0);
  auto word = [](const uint8_t* at) {
    uint64_t value;
    std::memcpy(&value, at, sizeof(value));
    return value;
  };
  EXPECT_EQ(word(row), 0u);  // no nulls
  int64_t a;
  std::memcpy(&a, row + RowView::SlotOffset(4, 0), sizeof(a));
  EXPECT_EQ(a, 7);
  int32_t c;
  std::memcpy(&c, row + RowView::SlotOffset(4, 2), sizeof(c));
  EXPECT_EQ(c, -3);
  // "hello world!" right after the fixed part: offset 40, length 12, padded to 16.
  EXPECT_EQ(word(row + RowView::SlotOffset(4, 1)), (uint64_t{40} << 32) | 12);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(row + 40), 12), "hello world!");
  // The list after it: count 3, one null word, three slots.
  EXPECT_EQ(word(row + RowView::SlotOffset(4, 3)), (uint64_t{56} << 32) | 40);
  EXPECT_EQ(word(row + 56), 3u);
  EXPECT_EQ(word(row + 64), 0b010u);
  EXPECT_EQ(rows.row_size(0), 56 + 40);

  // The same through the views.
  const RowView first = rows.row(0);
  EXPECT_EQ(first.GetFixed<int64_t>(0), 7);
  EXPECT_EQ(first.GetBytes(1), "hello world!");
  const ArrayView list = first.GetArray(3);
  ASSERT_EQ(list.length(), 3);
  EXPECT_FALSE(list.IsNull(0));
  EXPECT_TRUE(list.IsNull(1));
  EXPECT_EQ(list.GetFixed<int32_t>(2), 3);

  // Row 1: a and b null (bits 0 and 1) with zero slots; an empty list.
  EXPECT_EQ(word(rows.row_data(1)), 0b0011u);
  EXPECT_EQ(word(rows.row_data(1) + RowView::SlotOffset(4, 0)), 0u);
  EXPECT_EQ(rows.row(1).GetArray(3).length(), 0);
  EXPECT_EQ(rows.row_size(1), 40 + 8);
  // Row 2: c and d null; the empty string takes no bytes.
  EXPECT_EQ(word(rows.row_data(2)), 0b1100u);
  EXPECT_EQ(rows.row(2).GetBytes(1), "");
  EXPECT_EQ(rows.row_size(2), 40);
}

TEST(RowBatchTest, StoresDictionaryValuesDecoded) {
  const auto batch = MakeBatch({{"color", DictJson(arrow::dictionary(arrow::int8(), arrow::utf8()),
                                                   "[1, null, 0]", R"(["red", "green"])")}});
  ASSERT_OK_AND_ASSIGN(RowBatch rows, ColumnarToRows(*batch));
  EXPECT_EQ(rows.row(0).GetBytes(0), "green");
  EXPECT_TRUE(rows.row(1).IsNull(0));
  EXPECT_EQ(rows.row(2).GetBytes(0), "red");
}

TEST(RowBatchTest, RejectsTypesWithoutRowLayout) {
  const auto union_type =
      arrow::sparse_union({arrow::field("i", arrow::int32()), arrow::field("s", arrow::utf8())});
  ASSERT_OK_AND_ASSIGN(auto unions, arrow::MakeArrayOfNull(union_type, 2));
  auto status = ColumnarToRows(*MakeBatch({{"u", unions}})).status();
  EXPECT_TRUE(status.IsNotImplemented()) << status.ToString();
  EXPECT_NE(status.message().find("'u'"), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find("sparse_union"), std::string::npos) << status.ToString();

  // Nested, the message still names the column.
  ASSERT_OK_AND_ASSIGN(auto nested, arrow::StructArray::Make({unions}, {"inner"}));
  status = ColumnarToRows(*MakeBatch({{"outer", nested}})).status();
  EXPECT_TRUE(status.IsNotImplemented()) << status.ToString();
  EXPECT_NE(status.message().find("'outer'"), std::string::npos) << status.ToString();

  status = ArrowRowWriter::Make(arrow::schema({arrow::field("u", union_type)})).status();
  EXPECT_TRUE(status.IsNotImplemented()) << status.ToString();
  EXPECT_NE(status.message().find("'u'"), std::string::npos) << status.ToString();
}

TEST(ArrowRowWriterTest, AppendsSingleRows) {
  const auto batch = MakeBatch(AllTypes());
  ASSERT_OK_AND_ASSIGN(RowBatch rows, ColumnarToRows(*batch));
  ASSERT_OK_AND_ASSIGN(auto writer, ArrowRowWriter::Make(batch->schema()));
  for (int64_t i = 1; i < rows.num_rows() - 1; ++i) ASSERT_OK(writer->Append(rows, i));
  ASSERT_OK_AND_ASSIGN(auto result, writer->Flush());
  EXPECT_TRUE(result->Equals(*batch->Slice(1, rows.num_rows() - 2))) << result->ToString();
}

TEST(ArrowRowWriterTest, FlushStartsAFreshBatch) {
  const auto first = MakeBatch({{"color", DictJson(arrow::dictionary(arrow::int32(), arrow::utf8()),
                                                   "[0, 1, null]", R"(["red", "green"])")}});
  const auto second =
      MakeBatch({{"color", DictJson(arrow::dictionary(arrow::int32(), arrow::utf8()), "[0, 0]",
                                    R"(["blue"])")}});
  ASSERT_OK_AND_ASSIGN(RowBatch first_rows, ColumnarToRows(*first));
  ASSERT_OK_AND_ASSIGN(RowBatch second_rows, ColumnarToRows(*second));
  ASSERT_OK_AND_ASSIGN(auto writer, ArrowRowWriter::Make(first->schema()));

  ASSERT_OK(writer->AppendAll(first_rows));
  ASSERT_OK_AND_ASSIGN(auto result, writer->Flush());
  EXPECT_TRUE(result->Equals(*first)) << result->ToString();
  EXPECT_EQ(writer->num_rows(), 0);
  // The dictionary starts empty again: no "red" or "green" in the second batch.
  ASSERT_OK(writer->AppendAll(second_rows));
  ASSERT_OK_AND_ASSIGN(result, writer->Flush());
  EXPECT_TRUE(result->Equals(*second)) << result->ToString();

  ASSERT_OK_AND_ASSIGN(result, writer->Flush());
  EXPECT_EQ(result->num_rows(), 0);
  EXPECT_TRUE(result->schema()->Equals(*first->schema()));
}

TEST(ArrowRowWriterTest, KeepsUnsignedDictionaryIndices) {
  const auto batch = MakeBatch({{"code", DictJson(arrow::dictionary(arrow::uint8(), arrow::utf8()),
                                                  "[0, 1, null, 0]", R"(["x", "y"])")}});
  ExpectRoundTrip(batch);
}

TEST(ArrowRowWriterTest, RejectsBadRowsAndIndices) {
  const auto batch = MakeBatch({{"a", Json(arrow::int64(), "[1, 2]")}});
  ASSERT_OK_AND_ASSIGN(RowBatch rows, ColumnarToRows(*batch));
  ASSERT_OK_AND_ASSIGN(auto writer, ArrowRowWriter::Make(batch->schema()));
  EXPECT_TRUE(writer->Append(rows, 2).IsIndexError());
  EXPECT_TRUE(writer->Append(rows, -1).IsIndexError());

  ASSERT_OK_AND_ASSIGN(auto other,
                       ArrowRowWriter::Make(arrow::schema({arrow::field("a", arrow::utf8())})));
  EXPECT_TRUE(other->AppendAll(rows).IsInvalid());
  EXPECT_TRUE(other->Append(rows, 0).IsInvalid());
}

}  // namespace
}  // namespace quiver::exec::rows
