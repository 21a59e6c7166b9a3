#include "quiver/input/parallel_ipc_reader.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/array.h>
#include <arrow/buffer.h>
#include <arrow/builder.h>
#include <arrow/io/file.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/memory_pool.h>
#include <arrow/util/compression.h>

#include "quiver/input/input_file.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::input {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kBatchRows = 7;

class ParallelIpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::temp_directory_path() /
             ("quiver_parallel_ipc_test_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".arrow"))
                .string();
  }
  void TearDown() override { fs::remove(path_); }

  // Writes `batches` batches of kBatchRows rows, LZ4-compressed: id (0, 1, ...)
  // and a string that repeats the id. Batch `broken` (if any) gets a string
  // that is not UTF-8, which only a full validation finds.
  void WriteBatches(int batches, int broken = -1, int64_t rows = kBatchRows) {
    auto schema =
        arrow::schema({arrow::field("id", arrow::int64()), arrow::field("text", arrow::utf8())});
    auto options = arrow::ipc::IpcWriteOptions::Defaults();
    ASSERT_OK_AND_ASSIGN(options.codec, arrow::util::Codec::Create(arrow::Compression::LZ4_FRAME));
    ASSERT_OK_AND_ASSIGN(auto out, arrow::io::FileOutputStream::Open(path_));
    ASSERT_OK_AND_ASSIGN(auto writer, arrow::ipc::MakeFileWriter(out, schema, options));
    for (int b = 0; b < batches; ++b) {
      arrow::Int64Builder ids;
      arrow::StringBuilder texts;
      for (int64_t i = b * rows; i < (b + 1) * rows; ++i) {
        ASSERT_OK(ids.Append(i));
        ASSERT_OK(texts.Append(b == broken ? std::string("\xff\xfe") : "row " + std::to_string(i)));
      }
      auto batch = arrow::RecordBatch::Make(schema, rows, {*ids.Finish(), *texts.Finish()});
      ASSERT_OK(writer->WriteRecordBatch(*batch));
    }
    ASSERT_OK(writer->Close());
    ASSERT_OK(out->Close());
  }

  InputFile Open(int threads, int64_t batch_rows = 5) {
    InputReadOptions options;
    options.batch_rows = batch_rows;
    options.decode_threads = threads;
    auto input = OpenInputFile(path_, FileFormat::kArrowFile, options);
    EXPECT_TRUE(input.ok()) << input.status().ToString();
    return std::move(input).ValueOrDie();
  }

  std::string path_;
};

// Reads every batch; returns the ids and texts in the order they came.
std::vector<std::string> RowsOf(arrow::RecordBatchReader& reader, arrow::Status* ended) {
  std::vector<std::string> rows;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    *ended = reader.ReadNext(&batch);
    if (!ended->ok() || batch == nullptr) return rows;
    const auto& ids = static_cast<const arrow::Int64Array&>(*batch->GetColumnByName("id"));
    const auto* texts = batch->GetColumnByName("text").get();
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      std::string row = std::to_string(ids.Value(i));
      if (texts != nullptr)
        row += " " + static_cast<const arrow::StringArray&>(*texts).GetString(i);
      rows.push_back(std::move(row));
    }
  }
}

TEST_F(ParallelIpcTest, EveryRowOnceInTheFilesOrderOnSeveralThreads) {
  WriteBatches(300);
  for (int threads : {2, 3, 8}) {
    InputFile input = Open(threads);
    EXPECT_EQ(input.total_rows, 300 * kBatchRows);
    arrow::Status ended;
    std::vector<std::string> rows = RowsOf(*input.reader, &ended);
    ASSERT_OK(ended);
    ASSERT_EQ(rows.size(), static_cast<size_t>(300 * kBatchRows)) << threads << " threads";
    for (int64_t i = 0; i < 300 * kBatchRows; ++i) {
      ASSERT_EQ(rows[i], std::to_string(i) + " row " + std::to_string(i)) << threads << " threads";
    }
  }
}

TEST_F(ParallelIpcTest, ReadsTheSameAsOneThread) {
  WriteBatches(40);
  arrow::Status ended_one;
  arrow::Status ended_many;
  InputFile one = Open(1);
  InputFile many = Open(4);
  EXPECT_EQ(RowsOf(*many.reader, &ended_many), RowsOf(*one.reader, &ended_one));
  EXPECT_OK(ended_one);
  EXPECT_OK(ended_many);
}

TEST_F(ParallelIpcTest, DecodesOnlyTheColumnsAskedFor) {
  WriteBatches(20);
  InputReadOptions options;
  options.decode_threads = 3;
  options.columns = std::vector<std::string>{"id"};
  ASSERT_OK_AND_ASSIGN(auto input, OpenInputFile(path_, FileFormat::kArrowFile, options));
  EXPECT_EQ(input.reader->schema()->num_fields(), 1);
  EXPECT_EQ(input.file_schema->num_fields(), 2);
  arrow::Status ended;
  std::vector<std::string> rows = RowsOf(*input.reader, &ended);
  ASSERT_OK(ended);
  ASSERT_EQ(rows.size(), static_cast<size_t>(20 * kBatchRows));
  EXPECT_EQ(rows.back(), std::to_string(20 * kBatchRows - 1));
}

TEST_F(ParallelIpcTest, ABrokenBatchIsAnErrorNamingTheFileAndTheBatchAfterTheRowsBeforeIt) {
  WriteBatches(30, /*broken=*/17);
  for (int threads : {1, 3}) {
    InputFile input = Open(threads, kBatchRows);
    arrow::Status ended;
    std::vector<std::string> rows = RowsOf(*input.reader, &ended);
    EXPECT_EQ(rows.size(), static_cast<size_t>(17 * kBatchRows)) << threads << " threads";
    ASSERT_FALSE(ended.ok()) << threads << " threads";
    EXPECT_NE(ended.message().find(path_), std::string::npos) << ended.ToString();
    EXPECT_NE(ended.message().find("record batch 17 of 30"), std::string::npos) << ended.ToString();
    EXPECT_NE(ended.message().find("UTF8"), std::string::npos) << ended.ToString();
  }
}

// Returns a pool of its own that lives to the end of the program: Arrow's I/O
// threads may release the footer they read for a reader after the reader is gone.
arrow::ProxyMemoryPool* LastingPool() {
  static std::vector<std::unique_ptr<arrow::ProxyMemoryPool>> pools;
  pools.push_back(std::make_unique<arrow::ProxyMemoryPool>(arrow::default_memory_pool()));
  return pools.back().get();
}

// Bytes allocated from a pool of their own by `readers` readers of `path` once
// opened, and, with `hold_batch`, holding the first batch of one of them.
int64_t BytesOf(const std::string& path, int readers, bool hold_batch) {
  arrow::ProxyMemoryPool* pool = LastingPool();
  auto file = arrow::io::ReadableFile::Open(path, pool).ValueOrDie();
  auto read_options = arrow::ipc::IpcReadOptions::Defaults();
  read_options.memory_pool = pool;
  std::vector<std::shared_ptr<arrow::ipc::RecordBatchFileReader>> opened;
  for (int i = 0; i < readers; ++i) {
    opened.push_back(arrow::ipc::RecordBatchFileReader::Open(file, read_options).ValueOrDie());
  }
  std::shared_ptr<arrow::RecordBatch> batch;
  if (hold_batch) batch = opened[0]->ReadRecordBatch(0).ValueOrDie();
  return pool->bytes_allocated();
}

TEST_F(ParallelIpcTest, HoldsAtMostTheWindowOfBatchesAheadOfTheCaller) {
  constexpr int kThreads = 3;
  constexpr int kBatches = 200;
  WriteBatches(kBatches, -1, /*rows=*/2000);
  const int64_t opened = BytesOf(path_, kThreads, false);
  const int64_t one_batch = BytesOf(path_, 1, true) - BytesOf(path_, 1, false);
  ASSERT_GT(one_batch, 10000);
  // Everything the reader allocates (file reads, decompressed buffers) comes
  // from this pool: what it holds is the readers' footers and the batches.
  arrow::ProxyMemoryPool* pool = LastingPool();
  ASSERT_OK_AND_ASSIGN(auto file, arrow::io::ReadableFile::Open(path_, pool));
  auto read_options = arrow::ipc::IpcReadOptions::Defaults();
  read_options.memory_pool = pool;
  ASSERT_OK_AND_ASSIGN(auto reader, ReadIpcFileInParallel(file, read_options, kThreads));
  int64_t most = 0;
  int batches = 0;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ASSERT_OK(reader->ReadNext(&batch));
    if (batch == nullptr) break;
    ++batches;
    most = std::max(most, pool->bytes_allocated());
  }
  EXPECT_EQ(batches, kBatches);
  // threads + 1 ahead and the caller's one; a batch being decompressed also
  // holds its compressed bytes for a moment (at most one batch more a thread).
  EXPECT_LE(most, opened + (2 * kThreads + 2) * one_batch)
      << "one batch is " << one_batch << " bytes, the open readers " << opened;
}

}  // namespace
}  // namespace quiver::input
