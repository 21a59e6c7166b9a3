#include "quiver/cli/input_file.h"

#include <algorithm>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>

#include <arrow/buffer.h>
#include <arrow/csv/options.h>
#include <arrow/csv/reader.h>
#include <arrow/io/file.h>
#include <arrow/ipc/reader.h>
#include <parquet/arrow/reader.h>
#include <parquet/file_reader.h>
#include <parquet/metadata.h>
#include <parquet/properties.h>

namespace quiver::cli {
namespace {

namespace fs = std::filesystem;

// The bytes an Arrow IPC file starts with; a stream starts with a message instead.
constexpr std::string_view kArrowFileMagic = "ARROW1";
// Bytes of a CSV file looked at to estimate the size of a row.
constexpr int64_t kCsvSampleBytes = 64 * 1024;
// CSV blocks are never smaller than this: column types are inferred from the
// first block, and a block of a few rows would guess them from too little.
constexpr int64_t kMinCsvBlockBytes = 1 << 20;
constexpr int64_t kMaxCsvBlockBytes = 256 << 20;

arrow::Status CannotRead(const std::string& path, std::string_view as, const arrow::Status& cause,
                         std::string_view advice) {
  // Arrow's messages often end in a full stop; ours goes on after them.
  std::string_view message = cause.message();
  while (!message.empty() && (message.back() == '.' || message.back() == ' ')) {
    message.remove_suffix(1);
  }
  return cause.WithMessage("cannot read ", path, " as ", as, ": ", message, "; ", advice);
}

// Passes batches of `inner` through, slicing any larger than `batch_rows`, and
// names the file in read errors. `owner` keeps alive what `inner` reads from.
class SlicingReader : public arrow::RecordBatchReader {
 public:
  SlicingReader(std::shared_ptr<void> owner, std::shared_ptr<arrow::RecordBatchReader> inner,
                int64_t batch_rows, std::string path)
      : owner_(std::move(owner)),
        inner_(std::move(inner)),
        batch_rows_(batch_rows),
        path_(std::move(path)) {}

  std::shared_ptr<arrow::Schema> schema() const override { return inner_->schema(); }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    if (pending_ == nullptr) {
      auto status = inner_->ReadNext(&pending_);
      if (!status.ok()) {
        return status.WithMessage("reading input ", path_, ": ", status.message());
      }
      offset_ = 0;
      // Pass small batches (also empty ones) through untouched.
      if (pending_ == nullptr || pending_->num_rows() <= batch_rows_) {
        *out = std::move(pending_);
        pending_ = nullptr;
        return arrow::Status::OK();
      }
    }
    *out = pending_->Slice(offset_, batch_rows_);
    offset_ += (*out)->num_rows();
    if (offset_ >= pending_->num_rows()) pending_ = nullptr;
    return arrow::Status::OK();
  }

  arrow::Status Close() override { return inner_->Close(); }

 private:
  std::shared_ptr<void> owner_;  // declared first: destroyed after inner_
  std::shared_ptr<arrow::RecordBatchReader> inner_;
  int64_t batch_rows_;
  std::string path_;
  std::shared_ptr<arrow::RecordBatch> pending_;
  int64_t offset_ = 0;
};

// Reads the batches of an Arrow IPC file in order.
class IpcFileBatchReader : public arrow::RecordBatchReader {
 public:
  explicit IpcFileBatchReader(std::shared_ptr<arrow::ipc::RecordBatchFileReader> file)
      : file_(std::move(file)) {}

  std::shared_ptr<arrow::Schema> schema() const override { return file_->schema(); }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    if (next_ >= file_->num_record_batches()) {
      *out = nullptr;
      return arrow::Status::OK();
    }
    ARROW_ASSIGN_OR_RAISE(*out, file_->ReadRecordBatch(next_++));
    return arrow::Status::OK();
  }

 private:
  std::shared_ptr<arrow::ipc::RecordBatchFileReader> file_;
  int next_ = 0;
};

arrow::Status CheckIsFile(const std::string& path) {
  std::error_code error;
  const auto status = fs::status(path, error);
  if (!fs::exists(status)) {
    const fs::path absolute = fs::absolute(path, error);
    return arrow::Status::IOError(
        "input file ", path, " does not exist",
        path == absolute.string() ? "" : " (looked at " + absolute.string() + ")",
        "; check the path");
  }
  if (fs::is_directory(status)) {
    return arrow::Status::IOError("input ", path, " is a directory; quiver run reads one file");
  }
  return arrow::Status::OK();
}

arrow::Result<InputFile> OpenParquet(const std::string& path,
                                     const std::shared_ptr<arrow::io::ReadableFile>& file,
                                     int64_t batch_rows) {
  constexpr char kAdvice[] = "is it a Parquet file? Name its format with --input-format";
  parquet::ArrowReaderProperties properties;
  properties.set_batch_size(batch_rows);
  // Pre-buffering reads whole row groups' column chunks ahead into memory: with
  // large row groups the engine's memory would grow with the input. Batches are
  // read as they are needed instead.
  properties.set_pre_buffer(false);
  parquet::arrow::FileReaderBuilder builder;
  auto status = builder.Open(file);
  if (!status.ok()) return CannotRead(path, "Parquet", status, kAdvice);
  const int64_t total_rows = builder.raw_reader()->metadata()->num_rows();
  auto reader = builder.properties(properties)->Build();
  if (!reader.ok()) return CannotRead(path, "Parquet", reader.status(), kAdvice);
  std::shared_ptr<parquet::arrow::FileReader> owner = std::move(reader).ValueUnsafe();
  auto batches = owner->GetRecordBatchReader();
  if (!batches.ok()) return CannotRead(path, "Parquet", batches.status(), kAdvice);
  InputFile input;
  input.reader =
      std::make_shared<SlicingReader>(owner, std::move(batches).ValueUnsafe(), batch_rows, path);
  input.total_rows = total_rows;
  input.format = FileFormat::kParquet;
  return input;
}

arrow::Result<bool> HasArrowFileMagic(const std::shared_ptr<arrow::io::ReadableFile>& file) {
  ARROW_ASSIGN_OR_RAISE(const int64_t size, file->GetSize());
  if (size < static_cast<int64_t>(kArrowFileMagic.size())) return false;
  ARROW_ASSIGN_OR_RAISE(auto head, file->ReadAt(0, kArrowFileMagic.size()));
  return head->ToString() == kArrowFileMagic;
}

arrow::Result<InputFile> OpenArrowIpc(const std::string& path,
                                      const std::shared_ptr<arrow::io::ReadableFile>& file,
                                      int64_t batch_rows) {
  ARROW_ASSIGN_OR_RAISE(const bool is_file, HasArrowFileMagic(file));
  InputFile input;
  if (is_file) {
    auto reader = arrow::ipc::RecordBatchFileReader::Open(file);
    if (!reader.ok()) {
      return CannotRead(path, "an Arrow IPC file", reader.status(),
                        "the file starts like one but its footer is broken or missing");
    }
    auto rows = (*reader)->CountRows();
    if (rows.ok()) input.total_rows = *rows;
    input.reader = std::make_shared<SlicingReader>(
        nullptr, std::make_shared<IpcFileBatchReader>(*reader), batch_rows, path);
    input.format = FileFormat::kArrowFile;
    return input;
  }
  ARROW_RETURN_NOT_OK(file->Seek(0));  // reading the magic left the position undefined
  auto reader = arrow::ipc::RecordBatchStreamReader::Open(file);
  if (!reader.ok()) {
    return CannotRead(path, "an Arrow IPC stream", reader.status(),
                      "it is no Arrow IPC file either (no ARROW1 magic). Name its format with "
                      "--input-format");
  }
  input.reader = std::make_shared<SlicingReader>(file, *reader, batch_rows, path);
  input.format = FileFormat::kArrowStream;
  return input;
}

// Estimates the bytes of `batch_rows` rows from the first rows of the file.
arrow::Result<int32_t> CsvBlockSize(const std::shared_ptr<arrow::io::ReadableFile>& file,
                                    int64_t batch_rows) {
  ARROW_ASSIGN_OR_RAISE(const int64_t size, file->GetSize());
  ARROW_ASSIGN_OR_RAISE(auto sample, file->ReadAt(0, std::min(size, kCsvSampleBytes)));
  const auto* begin = sample->data();
  const int64_t lines = std::max<int64_t>(1, std::count(begin, begin + sample->size(), '\n'));
  const int64_t row_bytes = std::max<int64_t>(1, sample->size() / lines);
  const double wanted = static_cast<double>(row_bytes) * static_cast<double>(batch_rows);
  return static_cast<int32_t>(std::clamp<double>(wanted, kMinCsvBlockBytes, kMaxCsvBlockBytes));
}

arrow::Result<InputFile> OpenCsv(const std::string& path,
                                 const std::shared_ptr<arrow::io::ReadableFile>& file,
                                 int64_t batch_rows) {
  auto read_options = arrow::csv::ReadOptions::Defaults();
  ARROW_ASSIGN_OR_RAISE(read_options.block_size, CsvBlockSize(file, batch_rows));
  ARROW_RETURN_NOT_OK(file->Seek(0));  // reading the sample left the position undefined
  auto convert_options = arrow::csv::ConvertOptions::Defaults();
  // An empty unquoted field is null and "" is the empty string: what Arrow's
  // CSV writer (so quiver's CSV output) writes for them.
  convert_options.strings_can_be_null = true;
  convert_options.quoted_strings_can_be_null = false;
  auto parse_options = arrow::csv::ParseOptions::Defaults();
  // A one-column file writes a null row as an empty line: skipping empty lines
  // would silently drop those rows.
  parse_options.ignore_empty_lines = false;
  auto reader = arrow::csv::StreamingReader::Make(arrow::io::default_io_context(), file,
                                                  read_options, parse_options, convert_options);
  if (!reader.ok()) {
    return CannotRead(path, "CSV", reader.status(),
                      "quiver reads comma-separated files with a header row");
  }
  InputFile input;
  input.reader = std::make_shared<SlicingReader>(file, *reader, batch_rows, path);
  input.format = FileFormat::kCsv;
  return input;
}

}  // namespace

arrow::Result<InputFile> OpenInputFile(const std::string& path, FileFormat format,
                                       int64_t batch_rows) {
  if (batch_rows <= 0) return arrow::Status::Invalid("--batch-rows must be positive");
  ARROW_RETURN_NOT_OK(CheckIsFile(path));
  auto file = arrow::io::ReadableFile::Open(path);
  if (!file.ok()) {
    return file.status().WithMessage("cannot open input file ", path, ": ",
                                     file.status().message());
  }
  switch (format) {
    case FileFormat::kParquet:
      return OpenParquet(path, *file, batch_rows);
    case FileFormat::kCsv:
      return OpenCsv(path, *file, batch_rows);
    case FileFormat::kArrowFile:
    case FileFormat::kArrowStream:
      return OpenArrowIpc(path, *file, batch_rows);
    case FileFormat::kNoop:
      break;
  }
  return arrow::Status::Invalid("cannot read input in format ", FormatName(format));
}

}  // namespace quiver::cli
