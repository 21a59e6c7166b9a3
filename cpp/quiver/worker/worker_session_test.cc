#include "quiver/worker/worker_session.h"

#include <string>

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

}  // namespace
}  // namespace quiver::worker
