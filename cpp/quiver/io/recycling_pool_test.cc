#include "quiver/io/recycling_pool.h"

#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/buffer.h>

#include "quiver/testing/status_matchers.h"

namespace quiver::io {
namespace {

constexpr int64_t kMin = int64_t{64} << 10;
constexpr int64_t kMaxKept = int64_t{8} << 20;

class RecyclingMemoryPoolTest : public ::testing::Test {
 protected:
  arrow::MemoryPool* backing_ = arrow::default_memory_pool();
  RecyclingMemoryPool pool_{backing_, kMin, kMaxKept};
};

TEST_F(RecyclingMemoryPoolTest, AFreedLargeBlockServesTheNextRequestOfItsSize) {
  uint8_t* first = nullptr;
  ASSERT_OK(pool_.Allocate(1'000'000, &first));
  std::memset(first, 0xab, 1'000'000);
  pool_.Free(first, 1'000'000);
  EXPECT_EQ(pool_.kept_bytes(), int64_t{1} << 20);  // rounded up to a power of two

  uint8_t* second = nullptr;
  ASSERT_OK(pool_.Allocate(900'000, &second));  // a different size, the same block
  EXPECT_EQ(second, first);
  EXPECT_EQ(pool_.reused_blocks(), 1);
  EXPECT_EQ(pool_.kept_bytes(), 0);
  EXPECT_EQ(pool_.bytes_allocated(), 900'000);
  pool_.Free(second, 900'000);
  EXPECT_EQ(pool_.bytes_allocated(), 0);
}

TEST_F(RecyclingMemoryPoolTest, SmallRequestsGoToTheBackingPoolAndAreNotKept) {
  uint8_t* small = nullptr;
  ASSERT_OK(pool_.Allocate(kMin - 1, &small));
  pool_.Free(small, kMin - 1);
  EXPECT_EQ(pool_.kept_bytes(), 0);
  uint8_t* empty = nullptr;
  ASSERT_OK(pool_.Allocate(0, &empty));  // Arrow's pools give size 0 a shared area
  pool_.Free(empty, 0);
  EXPECT_EQ(pool_.reused_blocks(), 0);
}

TEST_F(RecyclingMemoryPoolTest, KeepsNoMoreThanItsLimit) {
  std::vector<uint8_t*> blocks(8);
  for (auto& block : blocks) ASSERT_OK(pool_.Allocate(int64_t{2} << 20, &block));
  for (auto* block : blocks) pool_.Free(block, int64_t{2} << 20);
  EXPECT_EQ(pool_.kept_bytes(), kMaxKept);  // four of the eight 2 MiB blocks
  pool_.ReleaseUnused();
  EXPECT_EQ(pool_.kept_bytes(), 0);
}

TEST_F(RecyclingMemoryPoolTest, BlocksOverHalfTheLimitAreNeverKept) {
  uint8_t* huge = nullptr;
  ASSERT_OK(pool_.Allocate(kMaxKept / 2 + 1, &huge));
  pool_.Free(huge, kMaxKept / 2 + 1);
  EXPECT_EQ(pool_.kept_bytes(), 0);
}

TEST_F(RecyclingMemoryPoolTest, ReallocationKeepsTheBytesAcrossBlockSizes) {
  uint8_t* data = nullptr;
  ASSERT_OK(pool_.Allocate(100, &data));  // starts in the backing pool
  for (int i = 0; i < 100; ++i) data[i] = static_cast<uint8_t>(i);
  ASSERT_OK(pool_.Reallocate(100, 70'000, &data));  // into a 128 KiB block
  uint8_t* first_block = data;
  ASSERT_OK(pool_.Reallocate(70'000, 130'000, &data));  // within it: nothing moves
  EXPECT_EQ(data, first_block);
  ASSERT_OK(pool_.Reallocate(130'000, 200'000, &data));  // into a 256 KiB block
  EXPECT_NE(data, first_block);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(data[i], static_cast<uint8_t>(i)) << i;
  ASSERT_OK(pool_.Reallocate(200'000, 50, &data));  // back to the backing pool
  for (int i = 0; i < 50; ++i) ASSERT_EQ(data[i], static_cast<uint8_t>(i)) << i;
  EXPECT_EQ(pool_.bytes_allocated(), 50);
  pool_.Free(data, 50);
  EXPECT_EQ(pool_.bytes_allocated(), 0);
  EXPECT_EQ(pool_.kept_bytes(), (int64_t{128} << 10) + (int64_t{256} << 10));
}

TEST_F(RecyclingMemoryPoolTest, ArrowBuffersFreedOnOtherThreadsComeBack) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int round = 0; round < kRounds; ++round) {
        auto buffer = arrow::AllocateBuffer(kMin * (1 + (round + t) % 4), &pool_);
        ASSERT_OK(buffer.status());
        std::memset((*buffer)->mutable_data(), t, static_cast<size_t>((*buffer)->size()));
        std::shared_ptr<arrow::Buffer> shared = std::move(buffer).ValueUnsafe();
        std::thread([shared = std::move(shared)]() mutable { shared.reset(); }).join();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(pool_.bytes_allocated(), 0);
  EXPECT_GT(pool_.reused_blocks(), kThreads * kRounds / 2);
  EXPECT_EQ(pool_.num_allocations(), kThreads * kRounds);
}

}  // namespace
}  // namespace quiver::io
