#include "quiver/cli/output_file.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include <filesystem>
#include <system_error>
#include <utility>

#include <arrow/csv/options.h>
#include <arrow/csv/writer.h>
#include <arrow/io/file.h>
#include <arrow/ipc/writer.h>
#include <arrow/memory_pool.h>
#include <arrow/util/compression.h>
#include <parquet/arrow/writer.h>
#include <parquet/properties.h>

namespace quiver::cli {
namespace {

namespace fs = std::filesystem;

// Adapts Arrow's IPC and CSV writers, which share the ipc::RecordBatchWriter interface.
// Writes batches with a format writer (Arrow IPC, CSV or Parquet), then closes
// the writer and the file under it.
template <typename FormatWriter, bool kSkipEmptyBatches>
class FileWriter : public OutputFile::Writer {
 public:
  FileWriter(std::shared_ptr<arrow::io::OutputStream> sink, FormatWriter writer)
      : sink_(std::move(sink)), writer_(std::move(writer)) {}

  arrow::Status Write(const arrow::RecordBatch& batch) override {
    if (kSkipEmptyBatches && batch.num_rows() == 0) return arrow::Status::OK();
    return writer_->WriteRecordBatch(batch);
  }

  arrow::Status Close() override {
    ARROW_RETURN_NOT_OK(writer_->Close());
    return sink_->Close();
  }

 private:
  std::shared_ptr<arrow::io::OutputStream> sink_;
  FormatWriter writer_;
};

// Arrow IPC and CSV keep empty batches, so a copy of an IPC input keeps its batches.
using RecordBatchWriterAdapter =
    FileWriter<std::shared_ptr<arrow::ipc::RecordBatchWriter>, /*kSkipEmptyBatches=*/false>;
// An empty batch adds nothing to a Parquet file but could add an empty row group.
using ParquetWriter =
    FileWriter<std::unique_ptr<parquet::arrow::FileWriter>, /*kSkipEmptyBatches=*/true>;

class NoopWriter : public OutputFile::Writer {
 public:
  arrow::Status Write(const arrow::RecordBatch&) override { return arrow::Status::OK(); }
  arrow::Status Close() override { return arrow::Status::OK(); }
};

arrow::Result<std::unique_ptr<OutputFile::Writer>> MakeParquetWriter(
    std::shared_ptr<arrow::io::OutputStream> sink, const std::shared_ptr<arrow::Schema>& schema) {
  parquet::WriterProperties::Builder properties;
  if (arrow::util::Codec::IsAvailable(arrow::Compression::SNAPPY)) {
    properties.compression(arrow::Compression::SNAPPY);
  }
  // The stored Arrow schema brings back what Parquet cannot say on its own
  // (time zones, large_string, dictionary columns) when the file is read.
  auto arrow_properties = parquet::ArrowWriterProperties::Builder().store_schema()->build();
  ARROW_ASSIGN_OR_RAISE(
      auto writer, parquet::arrow::FileWriter::Open(*schema, arrow::default_memory_pool(), sink,
                                                    properties.build(), arrow_properties));
  return std::make_unique<ParquetWriter>(std::move(sink), std::move(writer));
}

arrow::Result<std::shared_ptr<arrow::ipc::RecordBatchWriter>> MakeRecordBatchWriter(
    FileFormat format, const std::shared_ptr<arrow::io::OutputStream>& sink,
    const std::shared_ptr<arrow::Schema>& schema) {
  switch (format) {
    case FileFormat::kCsv:
      return arrow::csv::MakeCSVWriter(sink, schema);
    case FileFormat::kArrowFile:
      return arrow::ipc::MakeFileWriter(sink, schema);
    case FileFormat::kArrowStream:
      return arrow::ipc::MakeStreamWriter(sink, schema);
    case FileFormat::kParquet:
    case FileFormat::kNoop:
      break;
  }
  return arrow::Status::Invalid("no record batch writer for ", FormatName(format));
}

arrow::Result<std::unique_ptr<OutputFile::Writer>> MakeWriter(
    FileFormat format, std::shared_ptr<arrow::io::OutputStream> sink,
    const std::shared_ptr<arrow::Schema>& schema) {
  if (format == FileFormat::kNoop) return std::make_unique<NoopWriter>();
  if (format == FileFormat::kParquet) return MakeParquetWriter(std::move(sink), schema);
  ARROW_ASSIGN_OR_RAISE(auto writer, MakeRecordBatchWriter(format, sink, schema));
  return std::make_unique<RecordBatchWriterAdapter>(std::move(sink), std::move(writer));
}

}  // namespace

std::string TemporaryOutputPath(const std::string& path, int pid) {
  const fs::path output(path);
  const std::string name = "." + output.filename().string() + ".quiver-tmp-" + std::to_string(pid);
  return (output.parent_path() / name).string();
}

arrow::Status CheckOutputDirectory(const std::string& path) {
  if (path.empty()) return arrow::Status::Invalid("the output path is empty");
  const fs::path output(path);
  if (output.filename().empty()) {
    return arrow::Status::Invalid("output ", path, " names a directory; name the output file");
  }
  const fs::path directory = output.parent_path().empty() ? fs::path(".") : output.parent_path();
  std::error_code error;
  if (!fs::is_directory(directory, error)) {
    return arrow::Status::IOError("the directory of output ", path, " (", directory.string(),
                                  ") does not exist; create it first");
  }
  if (fs::is_directory(output, error)) {
    return arrow::Status::IOError("output ", path, " is a directory; name the output file");
  }
  return arrow::Status::OK();
}

arrow::Status CheckOutputIsNotInput(const std::string& input, const std::string& output,
                                    bool force) {
  if (force || input.empty() || output.empty()) return arrow::Status::OK();
  std::error_code error;
  // An output that does not exist yet cannot be the input; equivalent() sees
  // through links and other spellings of one file.
  if (!fs::exists(output, error) || !fs::equivalent(input, output, error) || error) {
    return arrow::Status::OK();
  }
  return arrow::Status::Invalid("output ", output, " is the input file ", input,
                                "; the run would replace its own input. Choose another output, "
                                "or add --force to replace the input once the run succeeded");
}

namespace {

// Returns the PID of `name` when it is a temporary file of output file `stem`
// (".STEM.quiver-tmp-PID"), else 0.
pid_t TemporaryFilePid(const std::string& name, const std::string& prefix) {
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return 0;
  const char* first = name.data() + prefix.size();
  const char* last = name.data() + name.size();
  pid_t pid = 0;
  auto [end, error] = std::from_chars(first, last, pid);
  return error == std::errc() && end == last && pid > 0 ? pid : 0;
}

bool ProcessExists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

}  // namespace

std::vector<std::string> RemoveStaleTemporaryOutputs(const std::string& path) {
  std::vector<std::string> removed;
  const fs::path output(path);
  const fs::path directory = output.parent_path().empty() ? fs::path(".") : output.parent_path();
  const std::string prefix = "." + output.filename().string() + ".quiver-tmp-";
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(directory, error)) {
    const pid_t pid = TemporaryFilePid(entry.path().filename().string(), prefix);
    // A live PID may be another run writing the same output right now.
    if (pid == 0 || ProcessExists(pid) || !entry.is_regular_file(error)) continue;
    if (fs::remove(entry.path(), error)) removed.push_back(entry.path().string());
  }
  return removed;
}

OutputFile::OutputFile(std::string path, std::string temporary_path)
    : path_(std::move(path)), temporary_path_(std::move(temporary_path)) {}

OutputFile::~OutputFile() {
  if (!done_) Discard();
}

arrow::Result<std::unique_ptr<OutputFile>> OutputFile::Open(
    const std::string& path, FileFormat format, const std::shared_ptr<arrow::Schema>& schema) {
  if (format == FileFormat::kNoop) {
    std::unique_ptr<OutputFile> output(new OutputFile("", ""));
    output->writer_ = std::make_unique<NoopWriter>();
    return output;
  }
  ARROW_RETURN_NOT_OK(CheckOutputDirectory(path));
  RemoveStaleTemporaryOutputs(path);
  std::unique_ptr<OutputFile> output(
      new OutputFile(path, TemporaryOutputPath(path, static_cast<int>(::getpid()))));
  auto sink = arrow::io::FileOutputStream::Open(output->temporary_path_);
  if (!sink.ok()) {
    return sink.status().WithMessage("cannot create ", output->temporary_path_,
                                     " (the temporary file for output ", path,
                                     "): ", sink.status().message());
  }
  auto writer = MakeWriter(format, *sink, schema);
  if (!writer.ok()) {
    return writer.status().WithMessage("cannot write ", FormatName(format), " output ", path, ": ",
                                       writer.status().message());
  }
  output->writer_ = std::move(writer).ValueUnsafe();
  return output;
}

arrow::Status OutputFile::Write(const std::shared_ptr<arrow::RecordBatch>& batch) {
  if (writer_ == nullptr) return arrow::Status::Invalid("output ", path_, " was discarded");
  auto status = writer_->Write(*batch);
  if (!status.ok()) return status.WithMessage("writing output ", path_, ": ", status.message());
  return arrow::Status::OK();
}

arrow::Status OutputFile::Commit() {
  if (writer_ == nullptr) return arrow::Status::Invalid("output ", path_, " was discarded");
  auto status = writer_->Close();
  if (!status.ok()) {
    Discard();
    return status.WithMessage("finishing output ", path_, ": ", status.message());
  }
  done_ = true;
  if (temporary_path_.empty()) return arrow::Status::OK();
  std::error_code error;
  fs::rename(temporary_path_, path_, error);
  if (error) {
    Discard();
    return arrow::Status::IOError("cannot move ", temporary_path_, " to output ", path_, ": ",
                                  error.message());
  }
  return arrow::Status::OK();
}

void OutputFile::Discard() {
  done_ = true;
  if (writer_ != nullptr) {
    // Closing flushes into a file about to be removed, but releases its descriptor.
    (void)writer_->Close();
    writer_.reset();
  }
  if (temporary_path_.empty()) return;
  std::error_code error;
  fs::remove(temporary_path_, error);
}

}  // namespace quiver::cli
