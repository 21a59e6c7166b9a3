#include "quiver/python/kind_stream.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <arrow/array/builder_primitive.h>

#include "quiver/exec/run_metrics.h"

namespace quiver::python {
namespace {

using Batch = std::shared_ptr<arrow::RecordBatch>;
constexpr auto kPatience = std::chrono::seconds(10);

Batch Numbers(int64_t first, int64_t rows) {
  arrow::Int64Builder builder;
  for (int64_t i = 0; i < rows; ++i) EXPECT_TRUE(builder.Append(first + i).ok());
  auto schema = arrow::schema({arrow::field("n", arrow::int64())});
  return arrow::RecordBatch::Make(schema, rows, {builder.Finish().ValueOrDie()});
}

arrow::Result<Batch> Read(ResultStream* stream) {
  auto future = stream->ReadNextAsync();
  if (future.wait_for(kPatience) != std::future_status::ready) {
    return arrow::Status::IOError("no answer from the stream in time");
  }
  return future.get();
}

// A body that pushes `batches` batches of 10 rows, then returns `outcome`; it
// sets `*ended` when it is destroyed (the run and its workers released).
KindStream::Body Pushing(int batches, arrow::Status outcome,
                         std::shared_ptr<std::atomic<bool>> ended,
                         std::shared_ptr<std::atomic<int>> pushed = nullptr) {
  struct Release {
    std::shared_ptr<std::atomic<bool>> ended;
    ~Release() { *ended = true; }
  };
  auto release = std::shared_ptr<Release>(new Release{std::move(ended)});
  KindStream::Body body;
  body.run = [batches, outcome, pushed, release](const exec::grouped::BatchSink& sink) {
    for (int i = 0; i < batches; ++i) {
      ARROW_RETURN_NOT_OK(sink(Numbers(i * 10, 10)));
      if (pushed) ++*pushed;
    }
    return outcome;
  };
  body.final_schema = [] { return arrow::schema({arrow::field("empty", arrow::utf8())}); };
  body.metrics = [] {
    exec::grouped::KindMetrics metrics;
    metrics.rows_in = 70;  // the input's, not the 50 rows handed out
    metrics.batches_in = 7;
    metrics.bytes_in = 123;
    exec::UdfGroupMetrics group;
    group.udfs = {"f"};
    group.workers = {exec::WorkerMetrics{}};
    metrics.groups = {group};
    return metrics;
  };
  return body;
}

TEST(KindStreamTest, HandsOutTheBatchesInOrderThenTheEndAfterTheRunIsReleased) {
  auto ended = std::make_shared<std::atomic<bool>>(false);
  auto stream = KindStream::Start(nullptr, nullptr, Pushing(5, arrow::Status::OK(), ended), 2);
  for (int i = 0; i < 5; ++i) {
    auto batch = Read(stream.get());
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    ASSERT_NE(*batch, nullptr);
    EXPECT_EQ((*batch)->column(0)->GetScalar(0).ValueOrDie()->ToString(), std::to_string(i * 10));
  }
  auto end = Read(stream.get());
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(*end, nullptr);
  EXPECT_TRUE(*ended) << "the run must be released before the reader sees the end";
  EXPECT_EQ(stream->schema()->field(0)->name(), "n");  // from the first batch
  EXPECT_EQ(stream->metrics().rows, 70);
  EXPECT_EQ(stream->metrics().batches, 7);
  EXPECT_EQ(stream->metrics().bytes_in, 123);
  ASSERT_EQ(stream->metrics().groups.size(), 1u);
  EXPECT_EQ(stream->metrics().groups.front().udfs, std::vector<std::string>{"f"});
}

TEST(KindStreamTest, AnOutputWithoutBatchesTakesTheRunsFinalSchema) {
  auto stream = KindStream::Start(
      nullptr, nullptr, Pushing(0, arrow::Status::OK(), std::make_shared<std::atomic<bool>>(false)),
      2);
  auto end = Read(stream.get());
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(*end, nullptr);
  ASSERT_NE(stream->schema(), nullptr);
  EXPECT_EQ(stream->schema()->field(0)->name(), "empty");
}

TEST(KindStreamTest, BatchesBeforeAFailureAreReadThenTheFailure) {
  auto stream = KindStream::Start(nullptr, nullptr,
                                  Pushing(2, arrow::Status::Invalid("UDTF 'bad' broke"),
                                          std::make_shared<std::atomic<bool>>(false)),
                                  4);
  ASSERT_NE(*Read(stream.get()), nullptr);
  ASSERT_NE(*Read(stream.get()), nullptr);
  auto failure = Read(stream.get());
  ASSERT_FALSE(failure.ok());
  EXPECT_TRUE(failure.status().IsInvalid());
  EXPECT_NE(failure.status().message().find("UDTF 'bad' broke"), std::string::npos);
}

TEST(KindStreamTest, TheQueueBoundsTheRunAndCancelEndsIt) {
  auto ended = std::make_shared<std::atomic<bool>>(false);
  auto pushed = std::make_shared<std::atomic<int>>(0);
  auto stream =
      KindStream::Start(nullptr, nullptr, Pushing(1000, arrow::Status::OK(), ended, pushed), 3);
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (pushed->load() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(pushed->load(), 3) << "the run must wait while 3 batches are unread";
  stream->Cancel();
  auto cancelled = Read(stream.get());
  EXPECT_TRUE(cancelled.status().IsCancelled()) << cancelled.status().ToString();
  stream.reset();
  while (!*ended && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(*ended) << "a cancelled run must end and release its workers";
  EXPECT_EQ(pushed->load(), 3);
}

}  // namespace
}  // namespace quiver::python
