#include "quiver/worker/worker_execution.h"

#include <string>

#include <arrow/type.h>
#include <gtest/gtest.h>

namespace quiver::worker {
namespace {

v1::Init InitWithPayloads(const std::string& small, const std::string& large) {
  v1::Init init;
  init.add_udfs()->set_payload(small);
  init.add_udfs()->set_payload(large);
  return init;
}

TEST(SplitLargePayloadsTest, SmallPayloadsTravelInInitAlone) {
  const auto messages = SplitLargePayloads(InitWithPayloads("abc", "defg"), 4);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].init().payload_chunk_count(), 0u);
  EXPECT_EQ(messages[0].init().udfs(1).payload(), "defg");
}

TEST(SplitLargePayloadsTest, LargePayloadFollowsInOrderedChunksThatRebuildIt) {
  const std::string large = "0123456789";
  const auto messages = SplitLargePayloads(InitWithPayloads("abc", large), 4);
  ASSERT_EQ(messages.size(), 3u);
  const v1::Init& init = messages[0].init();
  EXPECT_EQ(init.payload_chunk_count(), 2u);
  EXPECT_EQ(init.udfs(0).payload(), "abc");
  std::string rebuilt = init.udfs(1).payload();
  for (size_t i = 1; i < messages.size(); ++i) {
    ASSERT_TRUE(messages[i].has_payload_chunk());
    EXPECT_EQ(messages[i].payload_chunk().udf_index(), 1u);
    rebuilt += messages[i].payload_chunk().data();
  }
  EXPECT_EQ(rebuilt, large);
}

std::shared_ptr<arrow::Schema> Fields(
    const std::vector<std::pair<std::string, std::shared_ptr<arrow::DataType>>>& fields) {
  arrow::FieldVector out;
  for (const auto& [name, type] : fields) out.push_back(arrow::field(name, type));
  return arrow::schema(out);
}

TEST(CheckErrorColumnsTest, TakesTheErrorColumnsOfUdfsInInitOrder) {
  const std::vector<std::string> udfs = {"a", "b", "c"};
  const auto s = arrow::utf8();
  const auto i = arrow::int64();
  EXPECT_TRUE(CheckErrorColumns(*Fields({{"a", i}, {"b", i}, {"c", i}}), udfs).ok());
  EXPECT_TRUE(CheckErrorColumns(
                  *Fields({{"a", i}, {"b", i}, {"c", i}, {"a__error", s}, {"c__error", s}}), udfs)
                  .ok());
}

TEST(CheckErrorColumnsTest, RefusesAnyOtherExtraField) {
  const std::vector<std::string> udfs = {"a", "b"};
  const auto s = arrow::utf8();
  const auto i = arrow::int64();
  const auto refused = [&](const std::shared_ptr<arrow::Schema>& schema) {
    const arrow::Status status = CheckErrorColumns(*schema, udfs);
    EXPECT_FALSE(status.ok()) << schema->ToString();
    return status.message();
  };
  EXPECT_NE(refused(Fields({{"a", i}, {"b", i}, {"extra", s}})).find("field 2 (extra: string)"),
            std::string::npos);
  refused(Fields({{"a", i}, {"b", i}, {"a__error", i}}));                    // not a string
  refused(Fields({{"a", i}, {"b", i}, {"b__error", s}, {"a__error", s}}));   // out of order
  refused(Fields({{"a", i}, {"b", i}, {"a__error", s}, {"a__error", s}}));   // twice
  refused(Fields({{"a", i}, {"b", i}, {"x__error", s}}));                    // no such UDF
  refused(Fields({{"a", i}, {"b", i}, {"a__error", arrow::large_utf8()}}));  // not utf8
}

}  // namespace
}  // namespace quiver::worker
