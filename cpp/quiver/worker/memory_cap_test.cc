#include "quiver/worker/memory_cap.h"

#include <signal.h>

#include <string>

#include <gtest/gtest.h>

#include "quiver/testing/status_matchers.h"
#include "quiver/worker/child_process.h"

namespace quiver::worker {
namespace {

using std::chrono::milliseconds;

TEST(ParseByteSize, ReadsBytesAndPowersOf1024) {
  EXPECT_EQ(*ParseByteSize("1048576"), 1048576);
  EXPECT_EQ(*ParseByteSize("512M"), int64_t{512} << 20);
  EXPECT_EQ(*ParseByteSize("2G"), int64_t{2} << 30);
  EXPECT_EQ(*ParseByteSize("2gib"), int64_t{2} << 30);
  EXPECT_EQ(*ParseByteSize("300MB"), int64_t{300} << 20);
  EXPECT_EQ(*ParseByteSize("1.5K"), 1536);
}

TEST(ParseByteSize, RefusesWhatIsNotASize) {
  for (const char* text : {"", "M", "12Q", "-5M", "0", "1..2G", "5 M"}) {
    auto parsed = ParseByteSize(text);
    EXPECT_FALSE(parsed.ok()) << text;
  }
  EXPECT_NE(ParseByteSize("12Q").status().message().find("e.g. 512M"), std::string::npos);
}

TEST(MemoryCap, StopsAProcessOverItsCapAndSaysSo) {
  // Touches 300 MiB (a repeated byte, not calloc's untouched zero pages).
  ASSERT_OK_AND_ASSIGN(
      auto child,
      ChildProcess::Spawn({"python3", "-c", "import time\nb = b'x' * (300 << 20)\ntime.sleep(60)"},
                          {}, 4096));
  child->CapMemory(int64_t{100} << 20);
  auto status = child->WaitFor(milliseconds(20000));
  ASSERT_TRUE(status.has_value()) << "the process over its cap was not stopped";
  EXPECT_TRUE(status->signaled);
  EXPECT_EQ(status->code, SIGKILL);
  ASSERT_NE(child->memory_cap(), nullptr);
  ASSERT_TRUE(child->memory_cap()->exceeded().has_value());
  EXPECT_GT(*child->memory_cap()->exceeded(), int64_t{100} << 20);
  EXPECT_NE(child->memory_cap()->Explanation().find("over its cap of 100 MiB"), std::string::npos)
      << child->memory_cap()->Explanation();
}

TEST(MemoryCap, LeavesAProcessUnderItsCapAlone) {
  ASSERT_OK_AND_ASSIGN(auto child,
                       ChildProcess::Spawn({"sh", "-c", "sleep 0.3; exit 4"}, {}, 4096));
  child->CapMemory(int64_t{200} << 20);
  auto status = child->WaitFor(milliseconds(10000));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->ToString(), "exited with status 4");
  EXPECT_FALSE(child->memory_cap()->exceeded().has_value());
  EXPECT_EQ(child->memory_cap()->Explanation(), "");
}

TEST(ResidentBytes, ReadsAProcessAndFailsForAnEndedOne) {
  ASSERT_OK_AND_ASSIGN(int64_t own, ResidentBytes(::getpid()));
  EXPECT_GT(own, 0);
  EXPECT_FALSE(ResidentBytes(0x7ffffff0).ok());
}

}  // namespace
}  // namespace quiver::worker
