#include "quiver/exec/in_flight_bytes.h"

#include <gtest/gtest.h>

namespace quiver::exec {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

TEST(InFlightBytes, OneBatchPerWorkerUntilAResultIsSeen) {
  InFlightBytes window(256 * kMiB, 2);
  window.SawInput(kMiB);
  EXPECT_TRUE(window.Allows(0));
  EXPECT_TRUE(window.Allows(1));
  EXPECT_FALSE(window.Allows(2));
}

TEST(InFlightBytes, LargeResultsShrinkTheWindowToOneBatch) {
  InFlightBytes window(256 * kMiB, 1);
  window.SawInput(2 * kMiB);
  window.SawResult(200 * kMiB);
  EXPECT_TRUE(window.Allows(0)) << "a batch always goes when none is pending";
  EXPECT_FALSE(window.Allows(1));
}

TEST(InFlightBytes, SmallBatchesKeepAWideWindow) {
  InFlightBytes window(256 * kMiB, 1);
  window.SawInput(kMiB);
  window.SawResult(kMiB);
  EXPECT_TRUE(window.Allows(100));
  EXPECT_FALSE(window.Allows(200));
}

TEST(InFlightBytes, NoLimitMeansNoByteBound) {
  InFlightBytes window(0, 1);
  window.SawInput(kMiB << 10);
  EXPECT_TRUE(window.Allows(1000));
}

}  // namespace
}  // namespace quiver::exec
