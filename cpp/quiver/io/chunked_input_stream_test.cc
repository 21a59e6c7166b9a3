#include "quiver/io/chunked_input_stream.h"

#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/ipc/reader.h>
#include <arrow/record_batch.h>

#include "quiver/testing/sample_data.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::io {
namespace {

std::shared_ptr<arrow::Buffer> Chunk(const std::string& text) {
  return arrow::Buffer::FromString(text);
}

std::string Text(const std::shared_ptr<arrow::Buffer>& buffer) { return buffer->ToString(); }

// Appends each text as one chunk and finishes the stream.
std::vector<std::shared_ptr<arrow::Buffer>> Fill(ChunkedInputStream* stream,
                                                 const std::vector<std::string>& texts) {
  std::vector<std::shared_ptr<arrow::Buffer>> chunks;
  for (const auto& text : texts) {
    chunks.push_back(Chunk(text));
    EXPECT_OK(stream->Append(chunks.back()));
  }
  stream->Finish();
  return chunks;
}

TEST(ChunkedInputStream, ReadWithinOneChunkIsASliceOfIt) {
  ChunkedInputStream stream;
  auto chunks = Fill(&stream, {"hello world"});
  ASSERT_OK_AND_ASSIGN(auto first, stream.Read(5));
  EXPECT_EQ(Text(first), "hello");
  EXPECT_EQ(first->data(), chunks[0]->data());  // no copy: same memory
  ASSERT_OK_AND_ASSIGN(auto second, stream.Read(6));
  EXPECT_EQ(Text(second), " world");
  EXPECT_EQ(second->data(), chunks[0]->data() + 5);
  EXPECT_EQ(stream.bytes_copied(), 0);
  ASSERT_OK_AND_ASSIGN(int64_t position, stream.Tell());
  EXPECT_EQ(position, 11);
}

TEST(ChunkedInputStream, ReadAcrossTwoChunksConcatenates) {
  ChunkedInputStream stream;
  auto chunks = Fill(&stream, {"abc", "defg"});
  ASSERT_OK_AND_ASSIGN(auto joined, stream.Read(5));
  EXPECT_EQ(Text(joined), "abcde");
  EXPECT_NE(joined->data(), chunks[0]->data());
  ASSERT_OK_AND_ASSIGN(auto rest, stream.Read(10));
  EXPECT_EQ(Text(rest), "fg");
  EXPECT_EQ(rest->data(), chunks[1]->data() + 2);  // the rest lies in one chunk again
  EXPECT_EQ(stream.bytes_copied(), 5);             // only the spanning read copied
}

TEST(ChunkedInputStream, ReadAcrossThreeChunks) {
  ChunkedInputStream stream;
  Fill(&stream, {"ab", "cd", "ef"});
  ASSERT_OK_AND_ASSIGN(auto all, stream.Read(6));
  EXPECT_EQ(Text(all), "abcdef");
  ASSERT_OK_AND_ASSIGN(auto end, stream.Read(1));
  EXPECT_EQ(end->size(), 0);
}

TEST(ChunkedInputStream, PartialReadThenSpanningRead) {
  ChunkedInputStream stream;
  Fill(&stream, {"abcd", "efgh", "ij"});
  ASSERT_OK_AND_ASSIGN(auto head, stream.Read(3));
  EXPECT_EQ(Text(head), "abc");
  ASSERT_OK_AND_ASSIGN(auto middle, stream.Read(6));
  EXPECT_EQ(Text(middle), "defghi");
  ASSERT_OK_AND_ASSIGN(auto tail, stream.Read(1));
  EXPECT_EQ(Text(tail), "j");
}

TEST(ChunkedInputStream, ReadAtTheEndReturnsFewerBytes) {
  ChunkedInputStream stream;
  Fill(&stream, {"abc", "de"});
  ASSERT_OK_AND_ASSIGN(auto head, stream.Read(4));
  EXPECT_EQ(Text(head), "abcd");
  ASSERT_OK_AND_ASSIGN(auto tail, stream.Read(100));
  EXPECT_EQ(Text(tail), "e");
  ASSERT_OK_AND_ASSIGN(auto nothing, stream.Read(100));
  EXPECT_EQ(nothing->size(), 0);
}

TEST(ChunkedInputStream, ZeroSizeReadsReturnNothingAndConsumeNothing) {
  ChunkedInputStream stream;
  Fill(&stream, {"xy"});
  ASSERT_OK_AND_ASSIGN(auto empty, stream.Read(0));
  EXPECT_EQ(empty->size(), 0);
  char byte = 0;
  ASSERT_OK_AND_ASSIGN(int64_t copied, stream.Read(0, &byte));
  EXPECT_EQ(copied, 0);
  ASSERT_OK_AND_ASSIGN(auto all, stream.Read(2));
  EXPECT_EQ(Text(all), "xy");
}

TEST(ChunkedInputStream, EmptyChunksAreSkipped) {
  ChunkedInputStream stream;
  Fill(&stream, {"", "ab", "", "c"});
  ASSERT_OK_AND_ASSIGN(auto all, stream.Read(3));
  EXPECT_EQ(Text(all), "abc");
}

TEST(ChunkedInputStream, ReadIntoCallerMemoryCopies) {
  ChunkedInputStream stream;
  Fill(&stream, {"abc", "def"});
  char out[8] = {};
  ASSERT_OK_AND_ASSIGN(int64_t copied, stream.Read(5, out));
  EXPECT_EQ(copied, 5);
  EXPECT_EQ(std::string(out, 5), "abcde");
  ASSERT_OK_AND_ASSIGN(copied, stream.Read(8, out));
  EXPECT_EQ(copied, 1);
  EXPECT_EQ(out[0], 'f');
}

TEST(ChunkedInputStream, PeekDoesNotConsume) {
  ChunkedInputStream stream;
  Fill(&stream, {"ab", "cd"});
  ASSERT_OK_AND_ASSIGN(auto within, stream.Peek(1));
  EXPECT_EQ(within, "a");
  ASSERT_OK_AND_ASSIGN(auto across, stream.Peek(3));
  EXPECT_EQ(across, "abc");
  ASSERT_OK_AND_ASSIGN(auto read, stream.Read(1));
  EXPECT_EQ(Text(read), "a");
  ASSERT_OK_AND_ASSIGN(auto rest, stream.Read(3));
  EXPECT_EQ(Text(rest), "bcd");
  ASSERT_OK_AND_ASSIGN(int64_t position, stream.Tell());
  EXPECT_EQ(position, 4);
}

TEST(ChunkedInputStream, PeekAfterPartialReadAcrossChunks) {
  ChunkedInputStream stream;
  Fill(&stream, {"abc", "def", "gh"});
  ASSERT_OK_AND_ASSIGN(auto head, stream.Read(1));
  ASSERT_OK_AND_ASSIGN(auto across, stream.Peek(5));
  EXPECT_EQ(across, "bcdef");
  ASSERT_OK_AND_ASSIGN(auto rest, stream.Read(100));
  EXPECT_EQ(Text(rest), "bcdefgh");
}

TEST(ChunkedInputStream, BlockedReadIsWokenByAChunk) {
  ChunkedInputStream stream;
  auto reader = std::async(std::launch::async, [&] { return stream.Read(4); });
  EXPECT_EQ(reader.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  ASSERT_OK(stream.Append(Chunk("ab")));
  EXPECT_EQ(reader.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  ASSERT_OK(stream.Append(Chunk("cd")));
  ASSERT_OK_AND_ASSIGN(auto read, reader.get());
  EXPECT_EQ(Text(read), "abcd");
}

TEST(ChunkedInputStream, BlockedReadIsWokenByFinish) {
  ChunkedInputStream stream;
  ASSERT_OK(stream.Append(Chunk("ab")));
  auto reader = std::async(std::launch::async, [&] { return stream.Read(4); });
  EXPECT_EQ(reader.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  stream.Finish();
  ASSERT_OK_AND_ASSIGN(auto read, reader.get());
  EXPECT_EQ(Text(read), "ab");
}

TEST(ChunkedInputStream, BlockedReadIsWokenByAbortWithItsStatus) {
  ChunkedInputStream stream;
  auto reader = std::async(std::launch::async, [&] { return stream.Read(4); });
  EXPECT_EQ(reader.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  stream.Abort(arrow::Status::IOError("worker connection lost"));
  auto result = reader.get();
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(result.status().IsIOError());
  EXPECT_NE(result.status().message().find("worker connection lost"), std::string::npos);
}

TEST(ChunkedInputStream, AppendAfterFinishOrCloseFails) {
  ChunkedInputStream stream;
  stream.Finish();
  EXPECT_FALSE(stream.Append(Chunk("late")).ok());
  ChunkedInputStream closed;
  ASSERT_OK(closed.Close());
  EXPECT_TRUE(closed.closed());
  EXPECT_FALSE(closed.Append(Chunk("late")).ok());
  EXPECT_FALSE(closed.Read(1).ok());
}

// Reads every batch of an IPC stream whose bytes were appended as `chunks`.
arrow::Result<std::vector<std::shared_ptr<arrow::RecordBatch>>> ReadAll(
    const std::vector<std::shared_ptr<arrow::Buffer>>& chunks) {
  auto stream = std::make_shared<ChunkedInputStream>();
  for (const auto& chunk : chunks) ARROW_RETURN_NOT_OK(stream->Append(chunk));
  stream->Finish();
  auto reader = arrow::ipc::RecordBatchStreamReader::Open(stream);
  if (!reader.ok()) return stream->ExplainFailure(reader.status());
  auto batches = (*reader)->ToRecordBatches();
  if (!batches.ok()) return stream->ExplainFailure(batches.status());
  return batches;
}

void ExpectSampleBatches(const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches,
                         int count) {
  ASSERT_EQ(static_cast<int>(batches.size()), count);
  for (int index = 0; index < count; ++index) {
    ASSERT_OK_AND_ASSIGN(auto expected, quiver::testing::MakeSampleBatch(index));
    EXPECT_TRUE(batches[index]->Equals(*expected)) << "batch " << index;
  }
}

TEST(ChunkedInputStream, ReadsAnIpcStreamSplitAtEveryByteIntoTwoChunks) {
  constexpr int kBatches = 3;
  ASSERT_OK_AND_ASSIGN(auto ipc, quiver::testing::MakeSampleIpcStream(kBatches));
  for (int64_t cut = 0; cut <= ipc->size(); ++cut) {
    ASSERT_OK_AND_ASSIGN(auto batches,
                         ReadAll({arrow::SliceBuffer(ipc, 0, cut), arrow::SliceBuffer(ipc, cut)}));
    ExpectSampleBatches(batches, kBatches);
    if (::testing::Test::HasFailure()) FAIL() << "split at byte " << cut;
  }
}

TEST(ChunkedInputStream, ReadsAnIpcStreamSplitAtRandomPointsIntoManyChunks) {
  constexpr int kBatches = 5;
  ASSERT_OK_AND_ASSIGN(auto ipc, quiver::testing::MakeSampleIpcStream(kBatches));
  std::mt19937_64 random(20261121);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<std::shared_ptr<arrow::Buffer>> chunks;
    int64_t offset = 0;
    while (offset < ipc->size()) {
      const int64_t length = std::min<int64_t>(ipc->size() - offset, 1 + random() % 97);
      chunks.push_back(arrow::SliceBuffer(ipc, offset, length));
      offset += length;
    }
    ASSERT_OK_AND_ASSIGN(auto batches, ReadAll(chunks));
    ExpectSampleBatches(batches, kBatches);
    if (::testing::Test::HasFailure()) FAIL() << "trial " << trial;
  }
}

TEST(ChunkedInputStream, BatchBodiesInsideOneChunkAreNotCopied) {
  ASSERT_OK_AND_ASSIGN(auto ipc, quiver::testing::MakeSampleIpcStream(1));
  ASSERT_OK_AND_ASSIGN(auto batches, ReadAll({ipc}));
  ASSERT_EQ(batches.size(), 1u);
  const uint8_t* names = batches[0]->column(1)->data()->buffers[2]->data();
  EXPECT_GE(names, ipc->data());
  EXPECT_LT(names, ipc->data() + ipc->size());
}

TEST(ChunkedInputStream, TruncatedIpcMessageSaysHowManyBytesWereMissing) {
  ASSERT_OK_AND_ASSIGN(auto ipc, quiver::testing::MakeSampleIpcStream(2));
  // Cut the stream 10 bytes into the last record batch's body.
  auto result = ReadAll({arrow::SliceBuffer(ipc, 0, ipc->size() - 40)});
  ASSERT_FALSE(result.ok());
  const std::string message = result.status().message();
  EXPECT_NE(message.find("bytes short of a complete message"), std::string::npos) << message;
}

}  // namespace
}  // namespace quiver::io
