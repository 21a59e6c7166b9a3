#include "quiver/cli/output_file.h"

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/builder.h>
#include <arrow/compute/initialize.h>
#include <arrow/json/from_string.h>
#include <arrow/record_batch.h>
#include <arrow/table.h>
#include <arrow/type.h>

#include "quiver/input/input_file.h"
#include "quiver/testing/sample_data.h"
#include "quiver/testing/status_matchers.h"

namespace quiver::cli {
namespace {

namespace fs = std::filesystem;
using input::InputFile;
using input::InputReadOptions;
using input::OpenInputFile;

std::shared_ptr<arrow::Schema> FlatSchema() {
  return arrow::schema({arrow::field("id", arrow::int64()), arrow::field("name", arrow::utf8()),
                        arrow::field("value", arrow::float64())});
}

// Returns a batch of `rows` rows whose ids start at `first`.
std::shared_ptr<arrow::RecordBatch> FlatBatch(int64_t first, int64_t rows) {
  std::string ids = "[", names = "[", values = "[";
  for (int64_t i = first; i < first + rows; ++i) {
    const std::string sep = i == first ? "" : ",";
    ids += sep + std::to_string(i);
    names += sep + (i % 3 == 0 ? std::string("null") : "\"n" + std::to_string(i) + "\"");
    values += sep + std::to_string(i) + ".5";
  }
  auto make = [](const std::shared_ptr<arrow::DataType>& type, const std::string& json) {
    return arrow::json::ArrayFromJSONString(type, json + "]").ValueOrDie();
  };
  return arrow::RecordBatch::Make(
      FlatSchema(), rows,
      {make(arrow::int64(), ids), make(arrow::utf8(), names), make(arrow::float64(), values)});
}

class FileTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_OK(arrow::compute::Initialize()); }

  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("quiver_output_file_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes `batches` to `name` and commits.
  void WriteFile(const std::string& name, FileFormat format,
                 const std::shared_ptr<arrow::Schema>& schema,
                 const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches) {
    ASSERT_OK_AND_ASSIGN(auto output, OutputFile::Open(Path(name), format, schema));
    for (const auto& batch : batches) ASSERT_OK(output->Write(batch));
    ASSERT_OK(output->Commit());
  }

  // Reads every batch of `name`.
  std::vector<std::shared_ptr<arrow::RecordBatch>> ReadBatches(const std::string& name,
                                                               FileFormat format,
                                                               int64_t batch_rows,
                                                               InputFile* input_out = nullptr) {
    auto input = OpenInputFile(Path(name), format, batch_rows);
    EXPECT_OK(input);
    if (!input.ok()) return {};
    auto batches = input->reader->ToRecordBatches();
    EXPECT_OK(batches);
    if (input_out != nullptr) *input_out = *input;
    return batches.ok() ? *batches : std::vector<std::shared_ptr<arrow::RecordBatch>>{};
  }

  fs::path dir_;
};

TEST(TemporaryOutputPath, HidesTheFileBesideTheOutput) {
  EXPECT_EQ(TemporaryOutputPath("dir/out.parquet", 42), "dir/.out.parquet.quiver-tmp-42");
  EXPECT_EQ(TemporaryOutputPath("out.csv", 7), ".out.csv.quiver-tmp-7");
}

TEST_F(FileTest, WritesToATemporaryFileUntilCommitted) {
  ASSERT_OK_AND_ASSIGN(auto output,
                       OutputFile::Open(Path("out.parquet"), FileFormat::kParquet, FlatSchema()));
  EXPECT_EQ(output->temporary_path(), TemporaryOutputPath(Path("out.parquet"), ::getpid()));
  ASSERT_OK(output->Write(FlatBatch(0, 5)));
  EXPECT_TRUE(fs::exists(output->temporary_path()));
  EXPECT_FALSE(fs::exists(Path("out.parquet")));
  ASSERT_OK(output->Commit());
  EXPECT_FALSE(fs::exists(output->temporary_path()));
  EXPECT_TRUE(fs::exists(Path("out.parquet")));
}

TEST_F(FileTest, LeavesNothingWhenNotCommitted) {
  std::string temporary;
  {
    ASSERT_OK_AND_ASSIGN(auto output,
                         OutputFile::Open(Path("out.arrow"), FileFormat::kArrowFile, FlatSchema()));
    temporary = output->temporary_path();
    ASSERT_OK(output->Write(FlatBatch(0, 5)));
  }
  EXPECT_FALSE(fs::exists(temporary));
  EXPECT_FALSE(fs::exists(Path("out.arrow")));
}

TEST_F(FileTest, DiscardKeepsAnExistingOutput) {
  std::ofstream(Path("out.csv")) << "old\n";
  ASSERT_OK_AND_ASSIGN(auto output,
                       OutputFile::Open(Path("out.csv"), FileFormat::kCsv, FlatSchema()));
  ASSERT_OK(output->Write(FlatBatch(0, 5)));
  output->Discard();
  EXPECT_FALSE(fs::exists(output->temporary_path()));
  std::ifstream in(Path("out.csv"));
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "old");
  EXPECT_FALSE(output->Write(FlatBatch(0, 1)).ok());
}

TEST_F(FileTest, ChecksTheOutputDirectory) {
  auto status = CheckOutputDirectory(Path("missing/out.parquet"));
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("does not exist; create it first"), std::string::npos);
  EXPECT_FALSE(CheckOutputDirectory(dir_.string()).ok());
  ASSERT_OK(CheckOutputDirectory(Path("out.parquet")));
  ASSERT_OK(CheckOutputDirectory("relative.parquet"));
}

// Returns the PID of a process that has exited and been reaped.
pid_t DeadPid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

void Touch(const std::string& path) { std::ofstream(path) << "partial"; }

TEST_F(FileTest, RemovesTheTemporaryFileOfAKilledRun) {
  const std::string stale = TemporaryOutputPath(Path("out.parquet"), DeadPid());
  const std::string live = TemporaryOutputPath(Path("out.parquet"), ::getppid());
  const std::string other = TemporaryOutputPath(Path("other.parquet"), DeadPid());
  for (const auto& path : {stale, live, other}) Touch(path);
  Touch(Path(".out.parquet.quiver-tmp-12x"));  // not a PID: not ours to remove

  WriteFile("out.parquet", FileFormat::kParquet, FlatSchema(), {FlatBatch(0, 3)});
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live)) << "a live process may be writing it";
  EXPECT_TRUE(fs::exists(other)) << "it belongs to another output";
  EXPECT_TRUE(fs::exists(Path(".out.parquet.quiver-tmp-12x")));
  EXPECT_TRUE(fs::exists(Path("out.parquet")));
}

TEST_F(FileTest, RefusesToReplaceTheInputUnlessForced) {
  Touch(Path("data.csv"));
  fs::create_symlink(Path("data.csv"), Path("link.csv"));
  auto status = CheckOutputIsNotInput(Path("data.csv"), Path("data.csv"), /*force=*/false);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("is the input file"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("--force"), std::string::npos) << status.message();
  EXPECT_FALSE(CheckOutputIsNotInput(Path("data.csv"), Path("link.csv"), false).ok());
  EXPECT_FALSE(CheckOutputIsNotInput(Path("data.csv"),
                                     Path("./../") + dir_.filename().string() + "/data.csv", false)
                   .ok());
  ASSERT_OK(CheckOutputIsNotInput(Path("data.csv"), Path("data.csv"), /*force=*/true));
  ASSERT_OK(CheckOutputIsNotInput(Path("data.csv"), Path("new.csv"), false));
}

TEST_F(FileTest, NoopWritesNothing) {
  ASSERT_OK_AND_ASSIGN(auto output, OutputFile::Open("", FileFormat::kNoop, FlatSchema()));
  ASSERT_OK(output->Write(FlatBatch(0, 5)));
  ASSERT_OK(output->Commit());
  EXPECT_EQ(output->path(), "");
  EXPECT_TRUE(fs::is_empty(dir_));
}

struct FormatCase {
  std::string name;
  FileFormat format;
};

TEST_F(FileTest, RoundTripsEveryFormatInSlicedBatches) {
  const std::vector<FormatCase> cases = {{"t.parquet", FileFormat::kParquet},
                                         {"t.csv", FileFormat::kCsv},
                                         {"t.arrow", FileFormat::kArrowFile},
                                         {"t.arrows", FileFormat::kArrowStream}};
  const std::vector<std::shared_ptr<arrow::RecordBatch>> written = {
      FlatBatch(0, 10), FlatBatch(10, 0), FlatBatch(10, 7)};
  ASSERT_OK_AND_ASSIGN(auto expected, arrow::Table::FromRecordBatches(FlatSchema(), written));
  for (const auto& [name, format] : cases) {
    SCOPED_TRACE(name);
    WriteFile(name, format, FlatSchema(), written);
    InputFile input;
    auto batches = ReadBatches(name, format, 4, &input);
    for (const auto& batch : batches) EXPECT_LE(batch->num_rows(), 4);
    ASSERT_OK_AND_ASSIGN(auto table, arrow::Table::FromRecordBatches(FlatSchema(), batches));
    EXPECT_TRUE(table->Equals(*expected)) << table->ToString();
    if (format == FileFormat::kParquet || format == FileFormat::kArrowFile) {
      EXPECT_EQ(input.total_rows, 17);
    } else {
      EXPECT_EQ(input.total_rows, std::nullopt);
    }
  }
}

TEST_F(FileTest, KeepsEmptyBatchesOfArrowInput) {
  WriteFile("e.arrows", FileFormat::kArrowStream, FlatSchema(),
            {FlatBatch(0, 3), FlatBatch(3, 0), FlatBatch(3, 3)});
  auto batches = ReadBatches("e.arrows", FileFormat::kArrowStream, 100);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[1]->num_rows(), 0);
}

TEST_F(FileTest, WritesAnEmptyFileWithTheSchema) {
  for (const auto& [name, format] : std::vector<FormatCase>{{"z.parquet", FileFormat::kParquet},
                                                            {"z.arrow", FileFormat::kArrowFile}}) {
    WriteFile(name, format, FlatSchema(), {});
    InputFile input;
    auto batches = ReadBatches(name, format, 4, &input);
    EXPECT_TRUE(batches.empty());
    ASSERT_NE(input.reader, nullptr);
    EXPECT_TRUE(input.reader->schema()->Equals(*FlatSchema()));
  }
}

TEST_F(FileTest, TellsArrowFilesFromStreamsByTheMagic) {
  ASSERT_OK_AND_ASSIGN(auto sample, testing::MakeSampleBatch(1));
  WriteFile("stream.arrow", FileFormat::kArrowStream, sample->schema(), {sample, sample});
  InputFile input;
  auto batches = ReadBatches("stream.arrow", FileFormat::kArrowFile, 3, &input);
  EXPECT_EQ(input.format, FileFormat::kArrowStream);
  ASSERT_EQ(batches.size(), 4u);  // 4 rows per batch, sliced into 3 + 1
  EXPECT_TRUE(batches[0]->Equals(*sample->Slice(0, 3)));

  WriteFile("file.arrows", FileFormat::kArrowFile, sample->schema(), {sample});
  batches = ReadBatches("file.arrows", FileFormat::kArrowStream, 10, &input);
  EXPECT_EQ(input.format, FileFormat::kArrowFile);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_TRUE(batches[0]->Equals(*sample));
}

TEST_F(FileTest, ExplainsAMissingInput) {
  auto input = OpenInputFile(Path("nope.parquet"), FileFormat::kParquet, 10);
  ASSERT_FALSE(input.ok());
  EXPECT_NE(input.status().message().find("input file " + Path("nope.parquet") + " does not exist"),
            std::string::npos)
      << input.status().message();
  input = OpenInputFile(dir_.string(), FileFormat::kParquet, 10);
  EXPECT_NE(input.status().message().find("is a directory"), std::string::npos);
}

TEST_F(FileTest, ExplainsACorruptInput) {
  std::ofstream(Path("junk.parquet")) << "this is not a parquet file at all, just some bytes";
  for (auto format : {FileFormat::kParquet, FileFormat::kArrowFile}) {
    auto input = OpenInputFile(Path("junk.parquet"), format, 10);
    ASSERT_FALSE(input.ok());
    EXPECT_NE(input.status().message().find("cannot read " + Path("junk.parquet") + " as "),
              std::string::npos)
        << input.status().message();
    EXPECT_NE(input.status().message().find("--input-format"), std::string::npos)
        << input.status().message();
  }
}

// Reading only some columns: every format hands out those, in the file's order,
// and still tells the file's whole schema.
TEST_F(FileTest, ReadsOnlyTheColumnsAskedForInEveryFormat) {
  const std::vector<std::pair<std::string, FileFormat>> files = {
      {"in.parquet", FileFormat::kParquet},
      {"in.csv", FileFormat::kCsv},
      {"in.arrow", FileFormat::kArrowFile},
      {"in.arrows", FileFormat::kArrowStream}};
  for (const auto& [name, format] : files) {
    WriteFile(name, format, FlatSchema(), {FlatBatch(0, 30), FlatBatch(30, 30)});
    InputReadOptions options;
    options.batch_rows = 25;
    options.columns = std::vector<std::string>{"value", "id", "not_there"};
    for (int read_ahead : {0, 2}) {
      options.read_ahead_batches = read_ahead;
      ASSERT_OK_AND_ASSIGN(InputFile input, OpenInputFile(Path(name), format, options));
      EXPECT_EQ(input.file_schema->num_fields(), 3) << name;
      ASSERT_EQ(input.reader->schema()->num_fields(), 2) << name;
      EXPECT_EQ(input.reader->schema()->field(0)->name(), "id") << name;
      EXPECT_EQ(input.reader->schema()->field(1)->name(), "value") << name;
      ASSERT_OK_AND_ASSIGN(auto batches, input.reader->ToRecordBatches());
      int64_t rows = 0;
      for (const auto& batch : batches) {
        EXPECT_LE(batch->num_rows(), 25) << name;
        EXPECT_EQ(batch->num_columns(), 2) << name;
        rows += batch->num_rows();
      }
      EXPECT_EQ(rows, 60) << name;
    }
  }
}

TEST_F(FileTest, ParquetDecodesAboutBatchBytesAtATime) {
  // 200 rows of 10 kB strings: a cap of 50 kB decodes 5 rows at a time.
  arrow::StringBuilder builder;
  for (int i = 0; i < 200; ++i) {
    ASSERT_OK(builder.Append(std::to_string(i) + std::string(10000, 'a' + i % 26)));
  }
  auto schema = arrow::schema({arrow::field("s", arrow::utf8())});
  WriteFile("big.parquet", FileFormat::kParquet, schema,
            {arrow::RecordBatch::Make(schema, 200, {*builder.Finish()})});
  InputReadOptions options;
  options.batch_rows = 1000;
  options.batch_bytes = 50000;
  ASSERT_OK_AND_ASSIGN(InputFile input,
                       OpenInputFile(Path("big.parquet"), FileFormat::kParquet, options));
  ASSERT_OK_AND_ASSIGN(auto batches, input.reader->ToRecordBatches());
  ASSERT_FALSE(batches.empty());
  for (const auto& batch : batches) EXPECT_LE(batch->num_rows(), 6);
  // 1-row batches are cut from larger decodes, still one row each.
  options.batch_rows = 1;
  options.batch_bytes = int64_t{16} << 20;
  ASSERT_OK_AND_ASSIGN(input, OpenInputFile(Path("big.parquet"), FileFormat::kParquet, options));
  ASSERT_OK_AND_ASSIGN(batches, input.reader->ToRecordBatches());
  EXPECT_EQ(batches.size(), 200u);
}

}  // namespace
}  // namespace quiver::cli
