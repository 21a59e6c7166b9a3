#include "quiver/transport/shm/shm_arena.h"

#include <sys/mman.h>

#include <gtest/gtest.h>

#include "quiver/testing/status_matchers.h"

namespace quiver::transport::shm {
namespace {

TEST(RegionAllocator, HandsOutAlignedRangesAndMergesFreedOnes) {
  RegionAllocator allocator(1024);
  auto a = allocator.Allocate(100);  // rounded up to 128
  auto b = allocator.Allocate(64);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, 0);
  EXPECT_EQ(*b, 128);
  EXPECT_EQ(allocator.allocated_bytes(), 192);
  EXPECT_FALSE(allocator.Allocate(1024 - 192 + 1).has_value());  // no room
  EXPECT_TRUE(allocator.Free(*a));
  EXPECT_FALSE(allocator.Free(*a));  // not allocated any more
  EXPECT_TRUE(allocator.Free(*b));
  // Both freed ranges merged with the rest: the whole arena fits again.
  auto whole = allocator.Allocate(1024);
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(*whole, 0);
}

TEST(RegionFits, RejectsRangesPastTheEndWithoutOverflow) {
  EXPECT_TRUE(RegionFits(0, 100, 100));
  EXPECT_FALSE(RegionFits(1, 100, 100));
  EXPECT_FALSE(RegionFits(101, 0, 100));
  EXPECT_FALSE(RegionFits(8, UINT64_MAX - 4, 100));  // offset + length wraps around
}

TEST(SharedArena, SealedInputArenaCannotBeMappedWritableAgain) {
  ASSERT_OK_AND_ASSIGN(auto arena, SharedArena::Create("test", 4096, true, true));
  arena->data()[0] = 42;  // this process's own mapping stays writable
  void* again = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, arena->fd(), 0);
  EXPECT_EQ(again, MAP_FAILED);  // what the worker would try
  void* read_only = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, arena->fd(), 0);
  ASSERT_NE(read_only, MAP_FAILED);
  EXPECT_EQ(static_cast<uint8_t*>(read_only)[0], 42);
  ::munmap(read_only, 4096);
}

}  // namespace
}  // namespace quiver::transport::shm
