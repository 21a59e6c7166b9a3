#include "quiver/worker/bounded_log.h"

#include <string>

#include <gtest/gtest.h>

namespace quiver::worker {
namespace {

TEST(BoundedLog, ReturnsTheLastLinesIndented) {
  BoundedLog log(1024);
  log.Append("one\ntwo\nthr");
  log.Append("ee\n");
  EXPECT_EQ(log.LastLines(2, "> "), "> two\n> three\n");
  EXPECT_EQ(log.LastLines(10, ""), "one\ntwo\nthree\n");
}

TEST(BoundedLog, KeepsOnlyTheCapacity) {
  BoundedLog log(10);
  for (int i = 0; i < 1000; ++i) log.Append("line " + std::to_string(i) + "\n");
  EXPECT_EQ(log.LastLines(1, ""), "line 999\n");
  EXPECT_LE(log.LastLines(100, "").size(), 11u);
  EXPECT_GT(log.total_bytes(), 5000);
}

TEST(BoundedLog, QuotesOnlyTheCurrentSection) {
  BoundedLog log(1024);
  log.Append("from map one\n");
  log.StartSection();
  EXPECT_EQ(log.LastLines(5, ""), "");
  log.Append("from map two\n");
  EXPECT_EQ(log.LastLines(5, ""), "from map two\n");
  EXPECT_EQ(log.total_bytes(), 26);
}

TEST(BoundedLog, EmptyLogHasNoLines) {
  BoundedLog log(10);
  EXPECT_EQ(log.LastLines(5), "");
}

}  // namespace
}  // namespace quiver::worker
