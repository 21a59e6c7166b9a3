#include "quiver/exec/grouped/grouping.h"

#include <gtest/gtest.h>

#include <arrow/array/builder_binary.h>
#include <arrow/array/builder_primitive.h>
#include <arrow/compute/initialize.h>
#include <arrow/json/from_string.h>
#include <arrow/util/byte_size.h>

#include "quiver/exec/grouped/table_function.h"

namespace quiver::exec::grouped {
namespace {

std::shared_ptr<arrow::RecordBatch> KeysAndValues(const std::vector<int64_t>& keys,
                                                  const std::vector<std::string>& values) {
  arrow::Int64Builder key_builder;
  EXPECT_TRUE(key_builder.AppendValues(keys).ok());
  arrow::StringBuilder value_builder;
  EXPECT_TRUE(value_builder.AppendValues(values).ok());
  auto schema =
      arrow::schema({arrow::field("k", arrow::int64()), arrow::field("v", arrow::utf8())});
  return arrow::RecordBatch::Make(
      schema, static_cast<int64_t>(keys.size()),
      {key_builder.Finish().ValueOrDie(), value_builder.Finish().ValueOrDie()});
}

class GroupingTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(arrow::compute::Initialize().ok()); }
};

TEST_F(GroupingTest, GroupsInOrderOfFirstRowAndKeepsRowOrderWithinAGroup) {
  auto batch = KeysAndValues({7, 3, 7, 9, 3, 7}, {"a", "b", "c", "d", "e", "f"});
  auto grouping = GroupRows(*batch, {0});
  ASSERT_TRUE(grouping.ok()) << grouping.status();
  EXPECT_EQ(grouping->num_groups(), 3);
  EXPECT_EQ(grouping->offsets, (std::vector<int64_t>{0, 3, 5, 6}));
  std::vector<uint64_t> order;
  for (int64_t i = 0; i < grouping->order->length(); ++i)
    order.push_back(grouping->order->Value(i));
  EXPECT_EQ(order, (std::vector<uint64_t>{0, 2, 5, 1, 4, 3}));
  EXPECT_EQ(grouping->keys->column(0)->ToString(),
            (*arrow::json::ArrayFromJSONString(arrow::int64(), "[7, 3, 9]"))->ToString());
}

TEST_F(GroupingTest, BatchesHoldWholeGroupsNumberedFromZero) {
  auto batch = KeysAndValues({1, 2, 1, 2, 3, 3, 3}, {"a", "b", "c", "d", "e", "f", "g"});
  auto grouping = GroupRows(*batch, {0});
  ASSERT_TRUE(grouping.ok());
  GroupedBatchOptions options;
  options.batch_rows = 3;  // group 1 (2 rows) + group 2 (2 rows) do not fit together
  std::vector<std::string> seen;
  auto status = ForEachGroupedBatch(
      *batch, *grouping, {1}, options,
      [&](std::shared_ptr<arrow::RecordBatch> out, int64_t first, int64_t groups) {
        EXPECT_EQ(out->schema()->field(0)->name(), kGroupColumn);
        seen.push_back(std::to_string(first) + ":" + std::to_string(groups) + ":" +
                       out->column(0)->ToString() + out->column(1)->ToString());
        return arrow::Status::OK();
      });
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_NE(seen[0].find("0:1:"), std::string::npos);
  EXPECT_NE(seen[2].find("2:1:"), std::string::npos);
  EXPECT_NE(seen[2].find("\"e\""), std::string::npos);
}

TEST_F(GroupingTest, AGroupOverTheLimitFailsNamingItsKeys) {
  auto batch = KeysAndValues({1, 2, 2, 2}, {"a", std::string(1000, 'x'), "y", "z"});
  auto grouping = GroupRows(*batch, {0});
  ASSERT_TRUE(grouping.ok());
  GroupedBatchOptions options;
  options.max_group_bytes = 500;
  options.limit_label = "--max-group-bytes";
  options.keys = {0};
  auto status = ForEachGroupedBatch(
      *batch, *grouping, {0, 1}, options,
      [](std::shared_ptr<arrow::RecordBatch>, int64_t, int64_t) { return arrow::Status::OK(); });
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("k=2"), std::string::npos) << status;
  EXPECT_NE(status.message().find("--max-group-bytes"), std::string::npos) << status;
}

TEST(RowIndicesTest, AcceptsNonDecreasingIndicesInRange) {
  auto indices = *arrow::json::ArrayFromJSONString(arrow::int32(), "[0, 0, 2, 2, 4]");
  EXPECT_TRUE(CheckRowIndices("explode", *indices, 5, "input batch 0").ok());
}

TEST(RowIndicesTest, RefusesAnIndexOutOfRangeNamingTheUdtf) {
  auto indices = *arrow::json::ArrayFromJSONString(arrow::int32(), "[0, 5]");
  auto status = CheckRowIndices("explode", *indices, 5, "input batch 3");
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("UDTF 'explode'"), std::string::npos) << status;
  EXPECT_NE(status.message().find("index 5"), std::string::npos) << status;
  EXPECT_NE(status.message().find("input batch 3"), std::string::npos) << status;
}

TEST(RowIndicesTest, RefusesDecreasingIndicesAndNulls) {
  auto decreasing = *arrow::json::ArrayFromJSONString(arrow::int32(), "[1, 0]");
  EXPECT_NE(CheckRowIndices("f", *decreasing, 5, "b").message().find("must not decrease"),
            std::string::npos);
  auto nulls = *arrow::json::ArrayFromJSONString(arrow::int32(), "[0, null]");
  EXPECT_FALSE(CheckRowIndices("f", *nulls, 5, "b").ok());
  auto wide = *arrow::json::ArrayFromJSONString(arrow::int64(), "[0]");
  EXPECT_FALSE(CheckRowIndices("f", *wide, 5, "b").ok());
}

}  // namespace
}  // namespace quiver::exec::grouped
