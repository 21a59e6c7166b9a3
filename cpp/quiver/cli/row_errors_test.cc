#include "quiver/cli/row_errors.h"

#include <memory>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <gtest/gtest.h>

namespace quiver::cli {
namespace {

std::shared_ptr<arrow::Array> Strings(const std::vector<std::string>& values,
                                      const std::vector<bool>& valid) {
  arrow::StringBuilder builder;
  const std::vector<uint8_t> valid_bytes(valid.begin(), valid.end());
  EXPECT_TRUE(builder.AppendValues(values, valid_bytes.data()).ok());
  return builder.Finish().ValueOrDie();
}

TEST(RowErrorsTest, CountsTheErrorColumnsOfTheNamedUdfsOnly) {
  auto schema = arrow::schema({arrow::field("x__error", arrow::utf8()),  // an input column
                               arrow::field("geo", arrow::utf8()),
                               arrow::field("geo__error", arrow::utf8())});
  auto counts = ErrorColumns(*schema, {"geo", "other"});
  ASSERT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts[0].udf, "geo");
  EXPECT_EQ(counts[0].column, 2);
  auto errors = Strings({"", "", "ValueError: no"}, {false, false, true});
  auto batch = arrow::RecordBatch::Make(schema, 3, {errors, errors, errors});
  CountFailedRows(*batch, &counts);
  CountFailedRows(*batch, &counts);
  EXPECT_EQ(counts[0].rows, 2);
  EXPECT_EQ(FormatFailedRows(counts),
            "  failed   2 rows of 'geo': null, their errors in geo__error\n");
  counts[0].rows = 1;
  EXPECT_EQ(FormatFailedRows(counts),
            "  failed   1 row of 'geo': null, their errors in geo__error\n");
}

TEST(RowErrorsTest, NoErrorColumnsNoLines) {
  auto schema = arrow::schema({arrow::field("geo", arrow::utf8())});
  EXPECT_TRUE(ErrorColumns(*schema, {"geo"}).empty());
  EXPECT_EQ(FormatFailedRows({}), "");
}

}  // namespace
}  // namespace quiver::cli
