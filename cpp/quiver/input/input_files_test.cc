#include "quiver/input/input_files.h"

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/array.h>
#include <arrow/builder.h>
#include <arrow/compute/expression.h>
#include <arrow/io/file.h>
#include <arrow/table.h>
#include <parquet/arrow/writer.h>

#include "quiver/testing/status_matchers.h"

namespace quiver::input {
namespace {

namespace fs = std::filesystem;

// What quiver.Session.map over several paths relies on: the files' rows one
// file after the other, and errors that name the path at fault.
class InputFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("quiver_input_files_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // Rows first .. first+rows-1 of one int64 column named `column`.
  std::string WriteIds(const std::string& name, int64_t first, int64_t rows,
                       const std::string& column = "id") {
    arrow::Int64Builder ids;
    for (int64_t i = first; i < first + rows; ++i) EXPECT_OK(ids.Append(i));
    auto table =
        arrow::Table::Make(arrow::schema({arrow::field(column, arrow::int64())}), {*ids.Finish()});
    auto out = arrow::io::FileOutputStream::Open(Path(name)).ValueOrDie();
    EXPECT_OK(parquet::arrow::WriteTable(*table, arrow::default_memory_pool(), out, 100));
    EXPECT_OK(out->Close());
    return Path(name);
  }

  // Reads every id; fails the test on a read error.
  static std::vector<int64_t> ReadIds(const InputFile& input) {
    std::vector<int64_t> ids;
    while (true) {
      std::shared_ptr<arrow::RecordBatch> batch;
      EXPECT_OK(input.reader->ReadNext(&batch));
      if (batch == nullptr) return ids;
      const auto& column = static_cast<const arrow::Int64Array&>(*batch->column(0));
      for (int64_t r = 0; r < column.length(); ++r) ids.push_back(column.Value(r));
    }
  }

  fs::path dir_;
};

TEST_F(InputFilesTest, ReadsTheFilesOneAfterTheOtherInTheOrderGiven) {
  const auto b = WriteIds("b.parquet", 300, 250);
  const auto a = WriteIds("a.parquet", 0, 300);
  InputReadOptions options = RunReadOptions(1);
  options.batch_rows = 64;
  ASSERT_OK_AND_ASSIGN(InputFile input, OpenInputFiles({a, b}, std::nullopt, options));
  const auto ids = ReadIds(input);
  ASSERT_EQ(ids.size(), 550u);
  for (size_t i = 0; i < ids.size(); ++i) ASSERT_EQ(ids[i], static_cast<int64_t>(i));
  EXPECT_FALSE(input.total_rows.has_value());

  ASSERT_OK_AND_ASSIGN(InputFile one, OpenInputFiles({a}, std::nullopt, options));
  EXPECT_EQ(one.total_rows, 300);
}

TEST_F(InputFilesTest, AMissingPathFailsBeforeAnyFileIsReadAndNamesTheClosestFile) {
  const auto a = WriteIds("people.parquet", 0, 10);
  auto input = OpenInputFiles({a, Path("peple.parquet")}, std::nullopt, InputReadOptions());
  ASSERT_FALSE(input.ok());
  const std::string message = input.status().message();
  EXPECT_NE(message.find("input file " + Path("peple.parquet") + " does not exist"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("did you mean '" + Path("people.parquet") + "'?"), std::string::npos)
      << message;
}

TEST_F(InputFilesTest, AFileOfOtherColumnsFailsTheStreamNamingBothFiles) {
  const auto a = WriteIds("a.parquet", 0, 10);
  const auto b = WriteIds("b.parquet", 10, 10, "other");
  ASSERT_OK_AND_ASSIGN(InputFile input, OpenInputFiles({a, b}, std::nullopt, InputReadOptions()));
  arrow::Status status;
  while (status.ok()) {
    std::shared_ptr<arrow::RecordBatch> batch;
    status = input.reader->ReadNext(&batch);
    if (status.ok() && batch == nullptr) break;
  }
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("input file " + b + " has the columns"), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("where " + a + " has"), std::string::npos) << status.message();
}

TEST_F(InputFilesTest, AnUnknownExtensionSaysHowTheCallerNamesTheFormat) {
  const auto a = WriteIds("a.parquet", 0, 10);
  fs::copy_file(a, Path("a.data"));
  InputReadOptions options;
  options.format_option = "input_format=";
  auto input = OpenInputFiles({Path("a.data")}, std::nullopt, options);
  ASSERT_FALSE(input.ok());
  EXPECT_NE(input.status().message().find("name it with input_format=parquet|"), std::string::npos)
      << input.status().message();
  ASSERT_OK_AND_ASSIGN(InputFile named,
                       OpenInputFiles({Path("a.data")}, std::string("parquet"), options));
  EXPECT_EQ(ReadIds(named).size(), 10u);
}

TEST_F(InputFilesTest, NeededColumnsAreTheArgumentsAndTheKeptColumnsOnlyWithASelection) {
  exec::UdfCall call;
  call.name = "f";
  call.arguments = {arrow::compute::field_ref("b"), arrow::compute::field_ref("a")};
  EXPECT_FALSE(NeededColumns({call}, std::nullopt).has_value());
  auto needed = NeededColumns({call}, std::vector<std::string>{"a", "c"});
  ASSERT_TRUE(needed.has_value());
  EXPECT_EQ(*needed, (std::vector<std::string>{"b", "a", "c"}));
}

}  // namespace
}  // namespace quiver::input
