#include "quiver/input/ordered_decoder.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/array.h>
#include <arrow/builder.h>
#include <arrow/status.h>

#include "quiver/testing/status_matchers.h"

namespace quiver::input {
namespace {

std::shared_ptr<arrow::Schema> IdSchema() {
  return arrow::schema({arrow::field("id", arrow::int64())});
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> BatchOf(int64_t id) {
  arrow::Int64Builder ids;
  ARROW_RETURN_NOT_OK(ids.Append(id));
  ARROW_ASSIGN_OR_RAISE(auto array, ids.Finish());
  return arrow::RecordBatch::Make(IdSchema(), 1, {array});
}

// Claims pieces 0 .. count - 1, each decoded by `decode(index)`.
ClaimPiece Pieces(
    int64_t count,
    std::function<arrow::Result<std::shared_ptr<arrow::RecordBatch>>(int64_t)> decode) {
  auto next = std::make_shared<int64_t>(0);
  return [next, count, decode]() -> arrow::Result<std::optional<DecodePiece>> {
    if (*next >= count) return std::nullopt;
    const int64_t index = (*next)++;
    return DecodePiece([decode, index](int) { return decode(index); });
  };
}

// Reads every batch; returns the ids in the order they came, and the status that ended the stream.
std::vector<int64_t> IdsOf(arrow::RecordBatchReader& reader, arrow::Status* ended,
                           std::atomic<int64_t>* consumed = nullptr) {
  std::vector<int64_t> ids;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    *ended = reader.ReadNext(&batch);
    if (!ended->ok() || batch == nullptr) return ids;
    ids.push_back(static_cast<const arrow::Int64Array&>(*batch->column(0)).Value(0));
    if (consumed != nullptr) ++*consumed;
  }
}

TEST(OrderedDecoderTest, HandsOutInClaimOrderWhenALaterPieceIsDecodedFirst) {
  // Piece 0 is held until piece 1 is decoded: the threads finish out of order.
  std::mutex mutex;
  std::condition_variable changed;
  bool second_done = false;
  auto reader = DecodeInOrder(IdSchema(),
                              Pieces(200,
                                     [&](int64_t index) {
                                       if (index == 0) {
                                         std::unique_lock<std::mutex> lock(mutex);
                                         changed.wait(lock, [&] { return second_done; });
                                       }
                                       if (index == 1) {
                                         std::lock_guard<std::mutex> lock(mutex);
                                         second_done = true;
                                         changed.notify_all();
                                       }
                                       return BatchOf(index);
                                     }),
                              OrderedDecodeOptions{2, 0});
  arrow::Status ended;
  std::vector<int64_t> ids = IdsOf(*reader, &ended);
  ASSERT_OK(ended);
  ASSERT_EQ(ids.size(), 200U);
  for (int64_t i = 0; i < 200; ++i) ASSERT_EQ(ids[i], i) << "every piece once, in order";
}

TEST(OrderedDecoderTest, NeverClaimsMoreThanTheWindowAheadOfTheCaller) {
  constexpr int kThreads = 3;
  std::atomic<int64_t> started{0};
  std::atomic<int64_t> consumed{0};
  std::atomic<int64_t> most_ahead{0};
  auto reader = DecodeInOrder(
      IdSchema(),
      Pieces(500,
             [&](int64_t index) {
               const int64_t ahead = ++started - consumed.load();
               int64_t seen = most_ahead.load();
               while (ahead > seen && !most_ahead.compare_exchange_weak(seen, ahead)) {
               }
               return BatchOf(index);
             }),
      OrderedDecodeOptions{kThreads, 0});
  arrow::Status ended;
  std::vector<int64_t> ids = IdsOf(*reader, &ended, &consumed);
  ASSERT_OK(ended);
  ASSERT_EQ(ids.size(), 500U);
  // The window (threads + 1) plus the batch the caller has and not yet counted.
  EXPECT_LE(most_ahead.load(), kThreads + 1 + 1);
}

TEST(OrderedDecoderTest, AnErrorComesOutInPlaceOfItsPieceAndEndsTheStream) {
  auto reader =
      DecodeInOrder(IdSchema(),
                    Pieces(50,
                           [](int64_t index) -> arrow::Result<std::shared_ptr<arrow::RecordBatch>> {
                             if (index == 7) return arrow::Status::Invalid("piece seven is broken");
                             return BatchOf(index);
                           }),
                    OrderedDecodeOptions{3, 0});
  arrow::Status ended;
  std::vector<int64_t> ids = IdsOf(*reader, &ended);
  EXPECT_EQ(ids, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(ended.IsInvalid());
  EXPECT_NE(ended.message().find("piece seven is broken"), std::string::npos);
  std::shared_ptr<arrow::RecordBatch> batch;
  EXPECT_TRUE(reader->ReadNext(&batch).IsInvalid()) << "the stream stays ended";
}

TEST(OrderedDecoderTest, AClaimErrorEndsTheStreamAfterThePiecesBeforeIt) {
  auto next = std::make_shared<int64_t>(0);
  ClaimPiece claim = [next]() -> arrow::Result<std::optional<DecodePiece>> {
    if (*next == 4) return arrow::Status::IOError("cannot read piece four");
    const int64_t index = (*next)++;
    return DecodePiece([index](int) { return BatchOf(index); });
  };
  auto reader = DecodeInOrder(IdSchema(), claim, OrderedDecodeOptions{2, 0});
  arrow::Status ended;
  EXPECT_EQ(IdsOf(*reader, &ended), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_TRUE(ended.IsIOError());
}

TEST(OrderedDecoderTest, NoPiecesIsAnEmptyStream) {
  auto reader = DecodeInOrder(IdSchema(), Pieces(0, BatchOf), OrderedDecodeOptions{4, 0});
  arrow::Status ended;
  EXPECT_TRUE(IdsOf(*reader, &ended).empty());
  EXPECT_OK(ended);
}

TEST(OrderedDecoderTest, DestroyingTheReaderEarlyStopsTheThreads) {
  auto reader = DecodeInOrder(IdSchema(), Pieces(1000, BatchOf), OrderedDecodeOptions{2, 0});
  std::shared_ptr<arrow::RecordBatch> batch;
  ASSERT_OK(reader->ReadNext(&batch));
  reader.reset();  // must return (threads joined), not hang
}

}  // namespace
}  // namespace quiver::input
