#include "quiver/input/input_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/array.h>
#include <arrow/builder.h>
#include <arrow/io/file.h>
#include <arrow/ipc/writer.h>
#include <arrow/table.h>
#include <parquet/arrow/writer.h>

#include "quiver/testing/status_matchers.h"

namespace quiver::input {
namespace {

namespace fs = std::filesystem;

// What a user of `quiver run` relies on: every row, in file order, in batches
// no larger than asked, only the columns asked for, and errors naming the file.
class InputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("quiver_input_file_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // `rows` rows of (id int64 = row number, name string = "n<row>").
  static std::shared_ptr<arrow::Table> People(int64_t rows) {
    arrow::Int64Builder ids;
    arrow::StringBuilder names;
    for (int64_t i = 0; i < rows; ++i) {
      EXPECT_OK(ids.Append(i));
      EXPECT_OK(names.Append("n" + std::to_string(i)));
    }
    auto schema =
        arrow::schema({arrow::field("id", arrow::int64()), arrow::field("name", arrow::utf8())});
    return arrow::Table::Make(schema, {*ids.Finish(), *names.Finish()});
  }

  std::string WriteParquet(const arrow::Table& table, const std::string& name) {
    auto out = arrow::io::FileOutputStream::Open(Path(name)).ValueOrDie();
    EXPECT_OK(parquet::arrow::WriteTable(table, arrow::default_memory_pool(), out, 250));
    EXPECT_OK(out->Close());
    return Path(name);
  }

  // Reads every batch; checks the ids run 0, 1, 2, ... and no batch exceeds `most` rows.
  static int64_t ReadInOrder(const InputFile& input, int64_t most) {
    int64_t next = 0;
    while (true) {
      std::shared_ptr<arrow::RecordBatch> batch;
      EXPECT_OK(input.reader->ReadNext(&batch));
      if (batch == nullptr) return next;
      EXPECT_LE(batch->num_rows(), most);
      const auto& ids = static_cast<const arrow::Int64Array&>(*batch->GetColumnByName("id"));
      for (int64_t r = 0; r < ids.length(); ++r) EXPECT_EQ(ids.Value(r), next++);
    }
  }

  fs::path dir_;
};

TEST_F(InputFileTest, ParquetComesInFileOrderInBatchesOfAtMostTheRowsAsked) {
  const auto path = WriteParquet(*People(1000), "people.parquet");
  for (int decode_threads : {1, 3}) {
    InputReadOptions options;
    options.batch_rows = 64;
    options.decode_threads = decode_threads;
    ASSERT_OK_AND_ASSIGN(auto input, OpenInputFile(path, FileFormat::kParquet, options));
    EXPECT_EQ(input.total_rows, 1000);
    EXPECT_EQ(ReadInOrder(input, 64), 1000) << decode_threads << " decode threads";
  }
}

TEST_F(InputFileTest, OnlyTheColumnsAskedAreReadButTheFileSchemaHasThemAll) {
  const auto path = WriteParquet(*People(10), "people.parquet");
  InputReadOptions options;
  options.columns = std::vector<std::string>{"id"};
  ASSERT_OK_AND_ASSIGN(auto input, OpenInputFile(path, FileFormat::kParquet, options));
  EXPECT_EQ(input.reader->schema()->field_names(), (std::vector<std::string>{"id"}));
  EXPECT_EQ(input.file_schema->field_names(), (std::vector<std::string>{"id", "name"}));
  EXPECT_EQ(ReadInOrder(input, 65536), 10);
}

TEST_F(InputFileTest, CsvIsReadInOrderInBatchesOfAtMostTheRowsAsked) {
  std::ofstream csv(Path("people.csv"));
  csv << "id,name\n";
  for (int i = 0; i < 500; ++i) csv << i << ",n" << i << "\n";
  csv.close();
  ASSERT_OK_AND_ASSIGN(auto input, OpenInputFile(Path("people.csv"), FileFormat::kCsv, 50));
  EXPECT_EQ(ReadInOrder(input, 50), 500);
}

TEST_F(InputFileTest, ArrowFilesAndStreamsAreToldApartByTheirBytes) {
  auto table = People(300);
  {
    auto out = arrow::io::FileOutputStream::Open(Path("people.arrow")).ValueOrDie();
    auto writer = arrow::ipc::MakeFileWriter(out, table->schema()).ValueOrDie();
    ASSERT_OK(writer->WriteTable(*table));
    ASSERT_OK(writer->Close());
  }
  {
    auto out = arrow::io::FileOutputStream::Open(Path("people.arrows")).ValueOrDie();
    auto writer = arrow::ipc::MakeStreamWriter(out, table->schema()).ValueOrDie();
    ASSERT_OK(writer->WriteTable(*table));
    ASSERT_OK(writer->Close());
  }
  for (const char* name : {"people.arrow", "people.arrows"}) {
    ASSERT_OK_AND_ASSIGN(auto input, OpenInputFile(Path(name), FileFormat::kArrowFile, 100));
    EXPECT_EQ(ReadInOrder(input, 100), 300) << name;
  }
}

TEST_F(InputFileTest, AMissingOrCorruptFileIsAnErrorNamingIt) {
  auto missing = OpenInputFile(Path("nowhere.parquet"), FileFormat::kParquet, 100);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(Path("nowhere.parquet")), std::string::npos)
      << missing.status().message();
  std::ofstream(Path("corrupt.parquet")) << "this is not a Parquet file, though its name says so";
  auto corrupt = OpenInputFile(Path("corrupt.parquet"), FileFormat::kParquet, 100);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_NE(corrupt.status().message().find(Path("corrupt.parquet")), std::string::npos)
      << corrupt.status().message();
}

TEST_F(InputFileTest, AMissingFileNamesTheClosestFileBesideIt) {
  WriteParquet(*People(10), "people.parquet");
  auto typo = OpenInputFile(Path("peeple.parquet"), FileFormat::kParquet, 100);
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("did you mean '" + Path("people.parquet") + "'?"),
            std::string::npos)
      << typo.status().message();
  auto far = OpenInputFile(Path("zzz.parquet"), FileFormat::kParquet, 100);
  ASSERT_FALSE(far.ok());
  EXPECT_NE(far.status().message().find("check the path"), std::string::npos)
      << far.status().message();
}

}  // namespace
}  // namespace quiver::input
