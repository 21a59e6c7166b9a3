#include "quiver/input/parallel_parquet_reader.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/array.h>
#include <arrow/builder.h>
#include <arrow/io/file.h>
#include <arrow/table.h>
#include <parquet/arrow/writer.h>
#include <parquet/file_reader.h>

#include "quiver/input/input_file.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::input {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kGroupRows = 100;

class ParallelParquetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::temp_directory_path() /
             ("quiver_parallel_parquet_test_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".parquet"))
                .string();
  }
  void TearDown() override { fs::remove(path_); }

  // Writes `groups` row groups of kGroupRows rows: id (0, 1, ...) and a string
  // that repeats the id, Snappy-compressed.
  void WriteGroups(int groups) {
    arrow::Int64Builder ids;
    arrow::StringBuilder texts;
    for (int64_t i = 0; i < groups * kGroupRows; ++i) {
      ASSERT_OK(ids.Append(i));
      ASSERT_OK(texts.Append("row " + std::to_string(i) + std::string(i % 50, 'x')));
    }
    auto schema =
        arrow::schema({arrow::field("id", arrow::int64()), arrow::field("text", arrow::utf8())});
    auto table = arrow::Table::Make(schema, {*ids.Finish(), *texts.Finish()});
    ASSERT_OK_AND_ASSIGN(auto out, arrow::io::FileOutputStream::Open(path_));
    auto properties =
        parquet::WriterProperties::Builder().compression(parquet::Compression::SNAPPY)->build();
    ASSERT_OK(parquet::arrow::WriteTable(*table, arrow::default_memory_pool(), out, kGroupRows,
                                         properties));
    ASSERT_OK(out->Close());
  }

  // Opens the file through quiver run's input path with `threads` decode threads.
  InputFile Open(int threads, int64_t batch_rows = 30) {
    InputReadOptions options;
    options.batch_rows = batch_rows;
    options.decode_threads = threads;
    auto input = OpenInputFile(path_, FileFormat::kParquet, options);
    EXPECT_TRUE(input.ok()) << input.status().ToString();
    return std::move(input).ValueOrDie();
  }

  std::string path_;
};

// Reads every batch; returns the ids in the order they came.
std::vector<int64_t> IdsOf(arrow::RecordBatchReader& reader) {
  std::vector<int64_t> ids;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    auto status = reader.ReadNext(&batch);
    EXPECT_TRUE(status.ok()) << status.ToString();
    if (!status.ok() || batch == nullptr) return ids;
    const auto& column = static_cast<const arrow::Int64Array&>(*batch->GetColumnByName("id"));
    for (int64_t i = 0; i < column.length(); ++i) ids.push_back(column.Value(i));
  }
}

TEST_F(ParallelParquetTest, BatchesComeInTheFilesOrderWhateverTheThreads) {
  WriteGroups(37);
  std::vector<int64_t> expected(37 * kGroupRows);
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<int64_t>(i);
  for (int threads : {1, 2, 3, 8, 64}) {
    InputFile input = Open(threads);
    ASSERT_EQ(input.reader->schema()->num_fields(), 2);
    EXPECT_EQ(input.total_rows, 37 * kGroupRows);
    EXPECT_EQ(IdsOf(*input.reader), expected) << threads << " threads";
  }
}

TEST_F(ParallelParquetTest, ValuesAreTheSingleReadersValues) {
  WriteGroups(9);
  ASSERT_OK_AND_ASSIGN(auto single, Open(1).reader->ToTable());
  ASSERT_OK_AND_ASSIGN(auto parallel, Open(4).reader->ToTable());
  EXPECT_TRUE(parallel->Equals(*single)) << parallel->ToString();
}

TEST_F(ParallelParquetTest, ReadsOnlyTheColumnsAskedFor) {
  WriteGroups(6);
  InputReadOptions options;
  options.decode_threads = 3;
  options.columns = std::vector<std::string>{"text"};
  ASSERT_OK_AND_ASSIGN(InputFile input, OpenInputFile(path_, FileFormat::kParquet, options));
  EXPECT_EQ(input.file_schema->num_fields(), 2);
  ASSERT_EQ(input.reader->schema()->num_fields(), 1);
  EXPECT_EQ(input.reader->schema()->field(0)->name(), "text");
  ASSERT_OK_AND_ASSIGN(auto table, input.reader->ToTable());
  EXPECT_EQ(table->num_rows(), 6 * kGroupRows);
  EXPECT_EQ(table->num_columns(), 1);
}

TEST_F(ParallelParquetTest, ACorruptRowGroupIsAnErrorAfterTheRowsBeforeIt) {
  WriteGroups(8);
  // Overwrite the start of row group 5's compressed `text` data with garbage.
  int64_t offset = 0;
  {
    auto file = parquet::ParquetFileReader::OpenFile(path_);
    offset = file->metadata()->RowGroup(5)->ColumnChunk(1)->data_page_offset();
  }
  {
    std::fstream file(path_, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(offset + 40);
    const std::string garbage(64, '\xff');
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  InputFile input = Open(3);
  std::vector<int64_t> ids;
  arrow::Status status;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    status = input.reader->ReadNext(&batch);
    if (!status.ok() || batch == nullptr) break;
    const auto& column = static_cast<const arrow::Int64Array&>(*batch->column(0));
    for (int64_t i = 0; i < column.length(); ++i) ids.push_back(column.Value(i));
  }
  ASSERT_FALSE(status.ok()) << "a corrupt row group read without an error";
  EXPECT_NE(status.message().find(path_), std::string::npos) << status.ToString();
  // Every row before the corrupt group came, in order, and none after it.
  ASSERT_GE(ids.size(), static_cast<size_t>(5 * kGroupRows));
  ASSERT_LE(ids.size(), static_cast<size_t>(6 * kGroupRows));
  for (size_t i = 0; i < ids.size(); ++i) ASSERT_EQ(ids[i], static_cast<int64_t>(i));
  // The stream stays ended with the error.
  std::shared_ptr<arrow::RecordBatch> batch;
  EXPECT_FALSE(input.reader->ReadNext(&batch).ok());
}

TEST_F(ParallelParquetTest, AReaderLeftHalfReadStopsItsThreads) {
  WriteGroups(40);
  for (int i = 0; i < 5; ++i) {
    InputFile input = Open(4, 10);
    std::shared_ptr<arrow::RecordBatch> batch;
    ASSERT_OK(input.reader->ReadNext(&batch));
    ASSERT_NE(batch, nullptr);
    // Destroyed here with every thread waiting for room: must not hang.
  }
}

TEST_F(ParallelParquetTest, NoRowGroupsReadIsAnEmptyStream) {
  auto schema = arrow::schema({arrow::field("id", arrow::int64())});
  auto table = arrow::Table::MakeEmpty(schema).ValueOrDie();
  ASSERT_OK_AND_ASSIGN(auto out, arrow::io::FileOutputStream::Open(path_));
  ASSERT_OK(parquet::arrow::WriteTable(*table, arrow::default_memory_pool(), out, 10));
  ASSERT_OK(out->Close());
  ASSERT_OK_AND_ASSIGN(auto source, arrow::io::ReadableFile::Open(path_));
  auto reader = parquet::ParquetFileReader::Open(source);
  ASSERT_OK_AND_ASSIGN(
      auto batches,
      ReadParquetInParallel(source, reader->metadata(), parquet::default_arrow_reader_properties(),
                            {}, std::nullopt, ParallelParquetOptions{}));
  EXPECT_EQ(batches->schema()->num_fields(), 1);
  std::shared_ptr<arrow::RecordBatch> batch;
  ASSERT_OK(batches->ReadNext(&batch));
  EXPECT_EQ(batch, nullptr);
}

TEST(DecodeThreadsTest, TheCoresTheWorkersLeaveAtLeastOneAtMostEight) {
  EXPECT_EQ(DecodeThreadsFor(2, 1), 1);
  EXPECT_EQ(DecodeThreadsFor(2, 2), 1);
  EXPECT_EQ(DecodeThreadsFor(8, 2), 6);
  EXPECT_EQ(DecodeThreadsFor(64, 4), kMaxDecodeThreads);
  EXPECT_EQ(DecodeThreadsFor(0, 1), 1);
}

}  // namespace
}  // namespace quiver::input
