#include "quiver/input/parallel_csv_reader.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/array.h>
#include <arrow/io/file.h>
#include <arrow/scalar.h>

#include "quiver/input/input_file.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::input {
namespace {

namespace fs = std::filesystem;

class ParallelCsvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::temp_directory_path() /
             ("quiver_parallel_csv_test_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".csv"))
                .string();
  }
  void TearDown() override { fs::remove(path_); }

  // Writes a header and `rows` rows: id, a text that repeats the id (empty,
  // so null, every 10th row), and a score. Row `broken` (if any) gets `line`.
  void WriteRows(int64_t rows, int64_t broken = -1, const std::string& line = "",
                 const std::string& end = "\n") {
    std::ofstream out(path_, std::ios::binary);
    out << "id,text,score" << end;
    for (int64_t i = 0; i < rows; ++i) {
      if (i == broken) {
        out << line << end;
        continue;
      }
      out << i << "," << (i % 10 == 0 ? "" : "row " + std::to_string(i) + std::string(i % 40, 'x'))
          << "," << (i % 7) * 0.5 << end;
    }
  }

  arrow::Result<InputFile> Open(int threads, int64_t batch_rows = 65536,
                                std::optional<std::vector<std::string>> columns = std::nullopt) {
    InputReadOptions options;
    options.batch_rows = batch_rows;
    options.decode_threads = threads;
    options.columns = std::move(columns);
    return OpenInputFile(path_, FileFormat::kCsv, options);
  }

  std::string path_;
};

// Reads every batch; returns each row as text, in the order they came.
std::vector<std::string> RowsOf(arrow::RecordBatchReader& reader, arrow::Status* ended,
                                int* batches = nullptr) {
  std::vector<std::string> rows;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    *ended = reader.ReadNext(&batch);
    if (!ended->ok() || batch == nullptr) return rows;
    if (batches != nullptr) ++*batches;
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      std::string row;
      for (const auto& column : batch->columns()) {
        row += column->GetScalar(i).ValueOrDie()->ToString() + "|";
      }
      rows.push_back(std::move(row));
    }
  }
}

// Reads the file with a reader of blocks of `block_bytes` on `threads` threads.
std::shared_ptr<arrow::RecordBatchReader> SmallBlocks(const std::string& path, int threads,
                                                      int64_t block_bytes) {
  CsvLayout layout;
  layout.file_schema =
      arrow::schema({arrow::field("id", arrow::int64()), arrow::field("text", arrow::utf8()),
                     arrow::field("score", arrow::float64())});
  layout.read_schema = layout.file_schema;
  layout.block_bytes = block_bytes;
  auto convert = arrow::csv::ConvertOptions::Defaults();
  auto parse = arrow::csv::ParseOptions::Defaults();
  parse.ignore_empty_lines = false;
  return ReadCsvInParallel(arrow::io::ReadableFile::Open(path).ValueOrDie(), layout, parse, convert,
                           threads)
      .ValueOrDie();
}

TEST_F(ParallelCsvTest, ManySmallBlocksGiveEveryRowOnceInOrder) {
  WriteRows(5000);
  for (int threads : {1, 2, 5}) {
    arrow::Status ended;
    int batches = 0;
    auto reader = SmallBlocks(path_, threads, 500);
    std::vector<std::string> rows = RowsOf(*reader, &ended, &batches);
    ASSERT_OK(ended);
    ASSERT_EQ(rows.size(), 5000U);
    EXPECT_GT(batches, 100) << "small blocks";
    for (int64_t i = 0; i < 5000; ++i) {
      ASSERT_EQ(rows[i].substr(0, rows[i].find('|')), std::to_string(i)) << threads << " threads";
    }
  }
}

TEST_F(ParallelCsvTest, ALineLongerThanABlockIsReadWhole) {
  WriteRows(300, /*broken=*/150, "150," + std::string(5000, 'y') + ",1.5");
  arrow::Status ended;
  std::vector<std::string> rows = RowsOf(*SmallBlocks(path_, 3, 256), &ended);
  ASSERT_OK(ended);
  ASSERT_EQ(rows.size(), 300U);
  EXPECT_EQ(rows[150], "150|" + std::string(5000, 'y') + "|1.5|");
}

TEST_F(ParallelCsvTest, WindowsLineEndsAndNoLastNewline) {
  {
    std::ofstream out(path_, std::ios::binary);
    out << "id,text,score\r\n";
    for (int i = 0; i < 400; ++i) out << i << ",t" << i << ",0.5" << (i < 399 ? "\r\n" : "");
  }
  arrow::Status ended;
  std::vector<std::string> rows = RowsOf(*SmallBlocks(path_, 2, 100), &ended);
  ASSERT_OK(ended);
  ASSERT_EQ(rows.size(), 400U);
  EXPECT_EQ(rows[399], "399|t399|0.5|");
}

TEST_F(ParallelCsvTest, OpenedForARunReadsTheSameAsOneThread) {
  // Over 1 MiB (the smallest block a run uses): several blocks.
  WriteRows(60000);
  ASSERT_GT(fs::file_size(path_), 2U << 20);
  ASSERT_OK_AND_ASSIGN(auto one, Open(1, 1000));
  ASSERT_OK_AND_ASSIGN(auto many, Open(3, 1000));
  EXPECT_TRUE(many.reader->schema()->Equals(*one.reader->schema()))
      << many.reader->schema()->ToString();
  arrow::Status ended_one;
  arrow::Status ended_many;
  std::vector<std::string> from_one = RowsOf(*one.reader, &ended_one);
  std::vector<std::string> from_many = RowsOf(*many.reader, &ended_many);
  ASSERT_OK(ended_one);
  ASSERT_OK(ended_many);
  ASSERT_EQ(from_many.size(), 60000U);
  EXPECT_EQ(from_many, from_one);
  EXPECT_EQ(from_many[10], "10|null|1.5|") << "an empty field is null";
}

TEST_F(ParallelCsvTest, OnlyTheColumnsAskedForInTheFilesOrder) {
  WriteRows(60000);
  ASSERT_OK_AND_ASSIGN(auto input, Open(2, 65536, std::vector<std::string>{"score", "id"}));
  EXPECT_EQ(input.file_schema->num_fields(), 3);
  ASSERT_EQ(input.reader->schema()->num_fields(), 2);
  EXPECT_EQ(input.reader->schema()->field(0)->name(), "id");
  arrow::Status ended;
  std::vector<std::string> rows = RowsOf(*input.reader, &ended);
  ASSERT_OK(ended);
  ASSERT_EQ(rows.size(), 60000U);
  EXPECT_EQ(rows[59999], "59999|1|") << "59999 % 7 * 0.5";
}

TEST_F(ParallelCsvTest, AMalformedRowIsAnErrorNamingTheFileAndItsLine) {
  // Row 50000 is on line 50002 (the header is line 1), far past the first block.
  WriteRows(60000, /*broken=*/50000, "50000,only two fields");
  ASSERT_OK_AND_ASSIGN(auto input, Open(3, 1000));
  arrow::Status ended;
  std::vector<std::string> rows = RowsOf(*input.reader, &ended);
  ASSERT_FALSE(ended.ok());
  EXPECT_LE(rows.size(), 50000U);
  EXPECT_GT(rows.size(), 1000U) << "the rows of the blocks before it came first";
  EXPECT_NE(ended.message().find(path_), std::string::npos) << ended.ToString();
  EXPECT_NE(ended.message().find("Expected 3 columns, got 2"), std::string::npos)
      << ended.ToString();
  EXPECT_NE(ended.message().find("line 50002: Expected 3 columns"), std::string::npos)
      << ended.ToString();
}

TEST_F(ParallelCsvTest, AValueOfAnotherTypeLaterOnIsAnError) {
  // The first block makes score a float; a later text cannot be one.
  WriteRows(60000, /*broken=*/55000, "55000,text,not a number");
  ASSERT_OK_AND_ASSIGN(auto input, Open(2, 1000));
  arrow::Status ended;
  RowsOf(*input.reader, &ended);
  ASSERT_FALSE(ended.ok());
  EXPECT_NE(ended.message().find(path_), std::string::npos) << ended.ToString();
  EXPECT_NE(ended.message().find("not a number"), std::string::npos) << ended.ToString();
  EXPECT_NE(ended.message().find("line 55002"), std::string::npos) << ended.ToString();
}

}  // namespace
}  // namespace quiver::input
