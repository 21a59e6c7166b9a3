#include "quiver/transport/shm/result_copies.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "quiver/testing/status_matchers.h"

namespace quiver::transport::shm {
namespace {

std::vector<uint8_t> Bytes(int64_t size, uint8_t value) {
  return std::vector<uint8_t>(static_cast<size_t>(size), value);
}

std::string Text(const arrow::Buffer& buffer) { return buffer.ToString(); }

TEST(ResultCopies, ACopyHoldsExactlyTheBytesCopiedWhateverTheSourceDoesAfterwards) {
  auto copies = ResultCopies::Make();
  std::vector<uint8_t> source = Bytes(100 << 10, 'a');
  ASSERT_OK_AND_ASSIGN(auto copy, copies->Copy(source.data(), 100 << 10));
  std::memset(source.data(), 'z', source.size());  // the worker rewrites its region
  EXPECT_EQ(copy->size(), 100 << 10);
  EXPECT_EQ(Text(*copy), std::string(100 << 10, 'a'));
  EXPECT_NE(copy->data(), source.data());
}

TEST(ResultCopies, ADroppedCopysMemoryIsReusedAndNoneOfItsBytesShowInTheNext) {
  auto copies = ResultCopies::Make();
  const int64_t large = 3 << 20;  // a piece of 4 MiB
  std::vector<uint8_t> first = Bytes(large, 'x');
  const uint8_t* memory = nullptr;
  {
    ASSERT_OK_AND_ASSIGN(auto copy, copies->Copy(first.data(), large));
    memory = copy->data();
  }
  EXPECT_EQ(copies->free_pieces(), 1);
  // A shorter result takes the same memory: its buffer ends where its bytes end,
  // so nothing of the longer result before it can be read through it.
  std::vector<uint8_t> second = Bytes(large / 2 + 5, 'y');
  ASSERT_OK_AND_ASSIGN(auto copy, copies->Copy(second.data(), large / 2 + 5));
  EXPECT_EQ(copy->data(), memory);
  EXPECT_EQ(copy->size(), large / 2 + 5);
  EXPECT_EQ(Text(*copy), std::string(static_cast<size_t>(large / 2 + 5), 'y'));
  EXPECT_EQ(copies->pieces_mapped(), 1);
  EXPECT_EQ(copies->free_pieces(), 0);
}

TEST(ResultCopies, CopiesAliveAtOnceNeverShareMemory) {
  auto copies = ResultCopies::Make();
  std::vector<uint8_t> a = Bytes(70 << 10, 'a');
  std::vector<uint8_t> b = Bytes(70 << 10, 'b');
  ASSERT_OK_AND_ASSIGN(auto first, copies->Copy(a.data(), 70 << 10));
  ASSERT_OK_AND_ASSIGN(auto second, copies->Copy(b.data(), 70 << 10));
  EXPECT_NE(first->data(), second->data());
  EXPECT_EQ(Text(*first), std::string(70 << 10, 'a'));
  EXPECT_EQ(Text(*second), std::string(70 << 10, 'b'));
  EXPECT_EQ(copies->pieces_mapped(), 2);
}

TEST(ResultCopies, APieceTooSmallIsNotTakenAndThePoolStaysBounded) {
  auto copies = ResultCopies::Make();
  std::vector<uint8_t> small = Bytes(64 << 10, 's');
  { ASSERT_OK_AND_ASSIGN(auto copy, copies->Copy(small.data(), 64 << 10)); }
  std::vector<uint8_t> larger = Bytes(65 << 10, 'l');
  ASSERT_OK_AND_ASSIGN(auto copy, copies->Copy(larger.data(), 65 << 10));
  EXPECT_EQ(Text(*copy), std::string(65 << 10, 'l'));
  EXPECT_EQ(copies->pieces_mapped(), 2);
  // More dropped copies than the pool keeps: the rest are unmapped.
  std::vector<std::shared_ptr<arrow::Buffer>> alive;
  for (size_t i = 0; i < ResultCopies::kMaxFreePieces + 3; ++i) {
    ASSERT_OK_AND_ASSIGN(auto one, copies->Copy(small.data(), 64 << 10));
    alive.push_back(std::move(one));
  }
  alive.clear();
  EXPECT_EQ(copies->free_pieces(), static_cast<int64_t>(ResultCopies::kMaxFreePieces));
}

TEST(ResultCopies, ACopyOutlivesItsPool) {
  std::vector<uint8_t> source = Bytes(80 << 10, 'k');
  std::shared_ptr<arrow::Buffer> copy;
  {
    auto copies = ResultCopies::Make();
    ASSERT_OK_AND_ASSIGN(copy, copies->Copy(source.data(), 80 << 10));
  }
  EXPECT_EQ(Text(*copy), std::string(80 << 10, 'k'));
  copy.reset();  // gives its piece back to the pool it kept alive
}

}  // namespace
}  // namespace quiver::transport::shm
