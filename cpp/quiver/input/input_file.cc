#include "quiver/input/input_file.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/csv/options.h>
#include <arrow/csv/reader.h>
#include <arrow/io/file.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/schema.h>
#include <parquet/file_reader.h>
#include <parquet/metadata.h>
#include <parquet/properties.h>
#include <parquet/size_statistics.h>

#include "quiver/exec/udf_checks.h"
#include "quiver/input/parallel_csv_reader.h"
#include "quiver/input/parallel_ipc_reader.h"
#include "quiver/input/parallel_parquet_reader.h"
#include "quiver/input/read_ahead.h"
#include "quiver/io/recycling_pool.h"

namespace quiver::input {
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
// Batches a run reads ahead of its workers (RunReadOptions).
constexpr int kRunReadAheadBatches = 2;

arrow::Status CannotRead(const std::string& path, std::string_view as, const arrow::Status& cause,
                         std::string_view advice) {
  // Arrow's messages often end in a full stop; ours goes on after them.
  std::string_view message = cause.message();
  while (!message.empty() && (message.back() == '.' || message.back() == ' ')) {
    message.remove_suffix(1);
  }
  return cause.WithMessage("cannot read ", path, " as ", as, ": ", message, "; ", advice);
}

// Returns `question` and how to name the format instead, for a file that does
// not read as the format its name says.
std::string FormatAdvice(std::string_view question, const InputReadOptions& options) {
  return std::string(question) + " Name its format with " + options.format_option;
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

// Wraps `inner` (read ahead on a thread when asked) in a SlicingReader.
std::shared_ptr<arrow::RecordBatchReader> Sliced(std::shared_ptr<void> owner,
                                                 std::shared_ptr<arrow::RecordBatchReader> inner,
                                                 const InputReadOptions& options,
                                                 const std::string& path) {
  if (options.read_ahead_batches > 0) {
    inner = ReadAhead(std::move(inner), options.read_ahead_batches);
  }
  return std::make_shared<SlicingReader>(std::move(owner), std::move(inner), options.batch_rows,
                                         path);
}

// Reads a Parquet file's row groups as one stream on the caller's thread, so
// that a batch may span row groups (a file of small row groups still gives
// batches of the run's size), and names the row group an error is in (as the
// parallel reader's errors do): on an error, and only then, the row groups the
// failing batch spans are read again one by one to find the broken one.
// `owner` decodes; its batch size is set.
class RowGroupsAsOneStream : public arrow::RecordBatchReader {
 public:
  RowGroupsAsOneStream(std::shared_ptr<parquet::arrow::FileReader> owner,
                       std::shared_ptr<arrow::Schema> schema,
                       std::optional<std::vector<int>> leaves)
      : owner_(std::move(owner)), schema_(std::move(schema)), leaves_(std::move(leaves)) {
    const auto metadata = owner_->parquet_reader()->metadata();
    for (int g = 0; g < metadata->num_row_groups(); ++g) {
      group_ends_.push_back((group_ends_.empty() ? 0 : group_ends_.back()) +
                            metadata->RowGroup(g)->num_rows());
    }
  }

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    if (stream_ == nullptr) {
      std::vector<int> groups(group_ends_.size());
      for (size_t g = 0; g < groups.size(); ++g) groups[g] = static_cast<int>(g);
      auto opened = Open(groups);
      if (!opened.ok()) return NameTheRowGroup(opened.status());
      stream_ = std::move(opened).ValueUnsafe();
    }
    auto status = stream_->ReadNext(out);
    if (!status.ok()) return NameTheRowGroup(status);
    if (*out != nullptr) rows_read_ += (*out)->num_rows();
    return arrow::Status::OK();
  }

 private:
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> Open(const std::vector<int>& groups) {
    std::shared_ptr<arrow::RecordBatchReader> reader;
    if (leaves_) {
      ARROW_ASSIGN_OR_RAISE(reader, owner_->GetRecordBatchReader(groups, *leaves_));
    } else {
      ARROW_ASSIGN_OR_RAISE(reader, owner_->GetRecordBatchReader(groups));
    }
    return reader;
  }

  // Returns `status` naming the first row group, from the one holding the next
  // row on, that does not read by itself (the one holding the next row when
  // each reads: the error came from between them).
  arrow::Status NameTheRowGroup(const arrow::Status& status) {
    const int groups = static_cast<int>(group_ends_.size());
    if (groups == 0) return status;
    int first = 0;
    while (first < groups && group_ends_[first] <= rows_read_) ++first;
    for (int g = first; g < groups; ++g) {
      auto alone = Open({g});
      arrow::Status read = alone.status();
      for (std::shared_ptr<arrow::RecordBatch> batch; read.ok();) {
        read = (*alone)->ReadNext(&batch);
        if (batch == nullptr) break;
      }
      if (!read.ok()) return RowGroupError(g, groups, read);
    }
    return RowGroupError(std::min(first, groups - 1), groups, status);
  }

  std::shared_ptr<parquet::arrow::FileReader> owner_;
  std::shared_ptr<arrow::Schema> schema_;
  std::optional<std::vector<int>> leaves_;
  std::vector<int64_t> group_ends_;  // the rows before the end of each row group
  int64_t rows_read_ = 0;
  std::shared_ptr<arrow::RecordBatchReader> stream_;
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
    // Checked as the parallel reader checks (parallel_ipc_reader.h): broken
    // offsets in a file must be an error here, not a crash further on.
    const int index = next_++;
    auto batch = file_->ReadRecordBatch(index);
    arrow::Status status = batch.status();
    if (status.ok()) status = (*batch)->ValidateFull();
    if (!status.ok()) {
      return status.WithMessage("record batch ", index, " of ", file_->num_record_batches(), ": ",
                                status.message());
    }
    *out = std::move(batch).ValueUnsafe();
    return arrow::Status::OK();
  }

 private:
  std::shared_ptr<arrow::ipc::RecordBatchFileReader> file_;
  int next_ = 0;
};

// Returns the indices of the fields of `schema` that `columns` names (all
// without `columns`), in the file's order.
std::vector<int> FieldIndices(const arrow::Schema& schema,
                              const std::optional<std::vector<std::string>>& columns) {
  std::vector<int> indices;
  for (int i = 0; i < schema.num_fields(); ++i) {
    if (!columns ||
        std::find(columns->begin(), columns->end(), schema.field(i)->name()) != columns->end()) {
      indices.push_back(i);
    }
  }
  return indices;
}

void AddLeaves(const parquet::arrow::SchemaField& field, std::vector<int>* leaves) {
  if (field.is_leaf()) leaves->push_back(field.column_index);
  for (const auto& child : field.children) AddLeaves(child, leaves);
}

// Row groups looked at to estimate the decoded bytes of a row.
constexpr int kSampledRowGroups = 16;

// Returns how many rows to decode at a time: about options.batch_bytes of the
// columns read (by the file's sizes, unencoded where the writer recorded them),
// at least one row, at least batch_rows rows when they fit, at most
// max(batch_rows, kMaxDecodeRows).
int64_t DecodeRows(const parquet::FileMetaData& metadata, const std::vector<int>& leaves,
                   const InputReadOptions& options) {
  int64_t bytes = 0;
  int64_t rows = 0;
  for (int g = 0; g < std::min(metadata.num_row_groups(), kSampledRowGroups); ++g) {
    auto group = metadata.RowGroup(g);
    rows += group->num_rows();
    for (int leaf : leaves) {
      auto chunk = group->ColumnChunk(leaf);
      int64_t chunk_bytes = chunk->total_uncompressed_size();
      // A dictionary-encoded chunk is much smaller than its decoded values.
      if (auto sizes = chunk->size_statistics();
          sizes != nullptr && sizes->unencoded_byte_array_data_bytes.has_value()) {
        chunk_bytes = std::max(chunk_bytes, *sizes->unencoded_byte_array_data_bytes);
      }
      bytes += chunk_bytes;
    }
  }
  const int64_t row_bytes = rows > 0 ? std::max<int64_t>(1, bytes / rows) : 1;
  const int64_t fit = std::max<int64_t>(1, options.batch_bytes / row_bytes);
  return std::min(fit, std::max(options.batch_rows, kMaxDecodeRows));
}

// OpenParquet's ending when several threads decode: the parallel reader reads
// ahead itself, so no read-ahead thread is stacked on it.
arrow::Result<InputFile> OpenParquetInParallel(
    const std::string& path, const std::shared_ptr<arrow::io::ReadableFile>& file,
    std::shared_ptr<parquet::FileMetaData> metadata,
    const std::shared_ptr<parquet::arrow::FileReader>& owner, std::vector<int> row_groups,
    std::vector<int> leaves, InputFile input, const InputReadOptions& options) {
  const auto& properties = owner->properties();  // the batch size set above included
  ParallelParquetOptions parallel;
  parallel.threads = options.decode_threads;
  std::optional<std::vector<int>> columns;
  if (options.columns) columns = std::move(leaves);
  auto batches = ReadParquetInParallel(file, metadata, properties, std::move(row_groups),
                                       std::move(columns), parallel);
  if (!batches.ok()) {
    return CannotRead(path, "Parquet", batches.status(),
                      FormatAdvice("is it a Parquet file?", options));
  }
  InputReadOptions sliced = options;
  sliced.read_ahead_batches = 0;
  input.reader = Sliced(file, std::move(batches).ValueUnsafe(), sliced, path);
  input.total_rows = metadata->num_rows();
  input.format = FileFormat::kParquet;
  return input;
}

arrow::Result<InputFile> OpenParquet(const std::string& path,
                                     const std::shared_ptr<arrow::io::ReadableFile>& file,
                                     const InputReadOptions& options) {
  const std::string advice = FormatAdvice("is it a Parquet file?", options);
  parquet::ArrowReaderProperties properties;
  // Pre-buffering reads whole row groups' column chunks ahead into memory: with
  // large row groups the engine's memory would grow with the input. Batches are
  // read as they are needed instead, each column's pages through a small buffer
  // (BufferedReaderProperties) rather than its column chunk read whole.
  properties.set_pre_buffer(false);
  properties.set_use_threads(options.use_threads);
  parquet::arrow::FileReaderBuilder builder;
  auto status = builder.Open(file, BufferedReaderProperties());
  if (!status.ok()) return CannotRead(path, "Parquet", status, advice);
  const auto metadata = builder.raw_reader()->metadata();
  auto reader = builder.memory_pool(io::ReaderMemoryPool())->properties(properties)->Build();
  if (!reader.ok()) return CannotRead(path, "Parquet", reader.status(), advice);
  std::shared_ptr<parquet::arrow::FileReader> owner = std::move(reader).ValueUnsafe();
  InputFile input;
  auto got_schema = owner->GetSchema(&input.file_schema);
  if (!got_schema.ok()) return CannotRead(path, "Parquet", got_schema, advice);
  std::vector<int> leaves;
  for (int field : FieldIndices(*input.file_schema, options.columns)) {
    AddLeaves(owner->manifest().schema_fields[field], &leaves);
  }
  owner->set_batch_size(DecodeRows(*metadata, leaves, options));
  std::vector<int> row_groups(metadata->num_row_groups());
  for (int g = 0; g < metadata->num_row_groups(); ++g) row_groups[g] = g;
  if (options.decode_threads > 1 && row_groups.size() > 1) {
    return OpenParquetInParallel(path, file, metadata, owner, std::move(row_groups),
                                 std::move(leaves), std::move(input), options);
  }
  // The schema of the columns read, as a reader of no row group reports it.
  auto empty = options.columns ? owner->GetRecordBatchReader({}, leaves)
                               : owner->GetRecordBatchReader(std::vector<int>{});
  if (!empty.ok()) return CannotRead(path, "Parquet", empty.status(), advice);
  std::optional<std::vector<int>> read_leaves;
  if (options.columns) read_leaves = std::move(leaves);
  auto batches =
      std::make_shared<RowGroupsAsOneStream>(owner, (*empty)->schema(), std::move(read_leaves));
  input.reader = Sliced(owner, std::move(batches), options, path);
  input.total_rows = metadata->num_rows();
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
                                      const InputReadOptions& options) {
  ARROW_ASSIGN_OR_RAISE(const bool is_file, HasArrowFileMagic(file));
  InputFile input;
  auto read_options = arrow::ipc::IpcReadOptions::Defaults();
  read_options.memory_pool = io::ReaderMemoryPool();
  if (is_file) {
    auto reader = arrow::ipc::RecordBatchFileReader::Open(file, read_options);
    if (!reader.ok()) {
      return CannotRead(path, "an Arrow IPC file", reader.status(),
                        "the file starts like one but its footer is broken or missing");
    }
    input.file_schema = (*reader)->schema();
    if (options.columns) {
      // Opened again to decode only the columns needed (the footer is read twice).
      read_options.included_fields = FieldIndices(*input.file_schema, options.columns);
      ARROW_ASSIGN_OR_RAISE(*reader, arrow::ipc::RecordBatchFileReader::Open(file, read_options));
    }
    auto rows = (*reader)->CountRows();
    if (rows.ok()) input.total_rows = *rows;
    input.format = FileFormat::kArrowFile;
    if (options.decode_threads > 1 && (*reader)->num_record_batches() > 1) {
      // The parallel reader reads ahead itself: no read-ahead thread on top.
      ARROW_ASSIGN_OR_RAISE(auto batches,
                            ReadIpcFileInParallel(file, read_options, options.decode_threads));
      InputReadOptions sliced = options;
      sliced.read_ahead_batches = 0;
      input.reader = Sliced(file, std::move(batches), sliced, path);
      return input;
    }
    input.reader = Sliced(nullptr, std::make_shared<IpcFileBatchReader>(*reader), options, path);
    return input;
  }
  ARROW_RETURN_NOT_OK(file->Seek(0));  // reading the magic left the position undefined
  auto reader = arrow::ipc::RecordBatchStreamReader::Open(file, read_options);
  if (!reader.ok()) {
    return CannotRead(path, "an Arrow IPC stream", reader.status(),
                      FormatAdvice("it is no Arrow IPC file either (no ARROW1 magic).", options));
  }
  input.file_schema = (*reader)->schema();
  if (options.columns) {
    // Opened again from the start to decode only the columns needed.
    read_options.included_fields = FieldIndices(*input.file_schema, options.columns);
    ARROW_RETURN_NOT_OK(file->Seek(0));
    ARROW_ASSIGN_OR_RAISE(*reader, arrow::ipc::RecordBatchStreamReader::Open(file, read_options));
  }
  input.reader = Sliced(file, *reader, options, path);
  input.format = FileFormat::kArrowStream;
  return input;
}

// Estimates the bytes of `batch_rows` rows from the first rows of the file,
// at most `batch_bytes` (but never under kMinCsvBlockBytes).
arrow::Result<int32_t> CsvBlockSize(const std::shared_ptr<arrow::io::ReadableFile>& file,
                                    int64_t batch_rows, int64_t batch_bytes) {
  ARROW_ASSIGN_OR_RAISE(const int64_t size, file->GetSize());
  ARROW_ASSIGN_OR_RAISE(auto sample, file->ReadAt(0, std::min(size, kCsvSampleBytes)));
  const auto* begin = sample->data();
  const int64_t lines = std::max<int64_t>(1, std::count(begin, begin + sample->size(), '\n'));
  const int64_t row_bytes = std::max<int64_t>(1, sample->size() / lines);
  const double wanted = std::min(static_cast<double>(row_bytes) * static_cast<double>(batch_rows),
                                 static_cast<double>(batch_bytes));
  return static_cast<int32_t>(std::clamp<double>(wanted, kMinCsvBlockBytes, kMaxCsvBlockBytes));
}

arrow::csv::ConvertOptions CsvConvertOptions(std::vector<std::string> include_columns) {
  auto convert_options = arrow::csv::ConvertOptions::Defaults();
  // An empty unquoted field is null and "" is the empty string: what Arrow's
  // CSV writer (so quiver's CSV output) writes for them.
  convert_options.strings_can_be_null = true;
  convert_options.quoted_strings_can_be_null = false;
  convert_options.include_columns = std::move(include_columns);
  return convert_options;
}

arrow::csv::ParseOptions CsvParseOptions() {
  auto parse_options = arrow::csv::ParseOptions::Defaults();
  // A one-column file writes a null row as an empty line: skipping empty lines
  // would silently drop those rows.
  parse_options.ignore_empty_lines = false;
  return parse_options;
}

// Returns the first two blocks of the file, up to their last line end: all the
// streaming reader that finds the column types may read (it would otherwise
// read up to 32 blocks ahead); the whole file when it has no line end there.
arrow::Result<std::shared_ptr<arrow::io::InputStream>> CsvHead(
    const std::shared_ptr<arrow::io::ReadableFile>& file, int64_t block_size) {
  ARROW_ASSIGN_OR_RAISE(const int64_t size, file->GetSize());
  if (size <= 2 * block_size) return file;
  ARROW_ASSIGN_OR_RAISE(auto head, file->ReadAt(0, 2 * block_size));
  for (int64_t end = head->size(); end > block_size; --end) {
    if (head->data()[end - 1] == '\n') {
      return std::make_shared<arrow::io::BufferReader>(arrow::SliceBuffer(head, 0, end));
    }
  }
  return file;
}

// Arrow's type inference quotes a malformed row ("Expected 4 columns, got 5:
// a,b,c,d,e") but does not say where it is: returns the row's line among the
// first `head_bytes` of the file (from 1), or 0 when it is not found.
int64_t LineOfQuotedRow(const std::shared_ptr<arrow::io::ReadableFile>& file, int64_t head_bytes,
                        std::string_view message) {
  const size_t got = message.find(" columns, got ");
  const size_t colon = got == std::string_view::npos ? got : message.find(": ", got);
  if (colon == std::string_view::npos || colon + 2 >= message.size()) return 0;
  const std::string_view row = message.substr(colon + 2);
  auto size = file->GetSize();
  if (!size.ok()) return 0;
  auto head = file->ReadAt(0, std::min(*size, head_bytes));
  if (!head.ok()) return 0;
  const std::string_view text(reinterpret_cast<const char*>((*head)->data()), (*head)->size());
  for (size_t at = text.find(row); at != std::string_view::npos; at = text.find(row, at + 1)) {
    if (at == 0 || text[at - 1] == '\n') {
      return 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n');
    }
  }
  return 0;
}

arrow::Result<std::shared_ptr<arrow::csv::StreamingReader>> OpenCsvReader(
    const std::string& path, const std::shared_ptr<arrow::io::ReadableFile>& file,
    const InputReadOptions& options) {
  auto read_options = arrow::csv::ReadOptions::Defaults();
  ARROW_ASSIGN_OR_RAISE(read_options.block_size,
                        CsvBlockSize(file, options.batch_rows, options.batch_bytes));
  ARROW_RETURN_NOT_OK(file->Seek(0));  // reading the sample left the position undefined
  ARROW_ASSIGN_OR_RAISE(auto head, CsvHead(file, read_options.block_size));
  auto reader =
      arrow::csv::StreamingReader::Make(arrow::io::default_io_context(), head, read_options,
                                        CsvParseOptions(), CsvConvertOptions({}));
  if (!reader.ok()) {
    const int64_t line =
        LineOfQuotedRow(file, 2 * int64_t{read_options.block_size}, reader.status().message());
    return CannotRead(
        path, "CSV",
        line > 0 ? reader.status().WithMessage("line ", line, ": ", reader.status().message())
                 : reader.status(),
        "quiver reads comma-separated files with a header row");
  }
  return std::move(reader).ValueUnsafe();
}

// OpenCsv's ending: the file is read again, block by block on the decode
// threads (parallel_csv_reader.h; one thread reads ahead of the caller), with the
// column types the streaming reader found.
arrow::Result<InputFile> ReadCsvRows(const std::string& path, InputFile input,
                                     const std::vector<int>& kept,
                                     const InputReadOptions& options) {
  ARROW_ASSIGN_OR_RAISE(auto source, arrow::io::ReadableFile::Open(path, io::ReaderMemoryPool()));
  CsvLayout layout;
  layout.file_schema = input.file_schema;
  arrow::FieldVector read_fields;
  for (int index : kept) read_fields.push_back(input.file_schema->field(index));
  layout.read_schema = arrow::schema(std::move(read_fields));
  ARROW_ASSIGN_OR_RAISE(layout.block_bytes,
                        CsvBlockSize(source, options.batch_rows, options.batch_bytes));
  std::vector<std::string> names;
  for (const auto& field : layout.read_schema->fields()) names.push_back(field->name());
  auto batches =
      ReadCsvInParallel(source, layout, CsvParseOptions(), CsvConvertOptions(std::move(names)),
                        std::max(1, options.decode_threads));
  if (!batches.ok()) {
    return CannotRead(path, "CSV", batches.status(),
                      "quiver reads comma-separated files with a header row");
  }
  InputReadOptions sliced = options;
  sliced.read_ahead_batches = 0;
  input.reader = Sliced(source, std::move(batches).ValueUnsafe(), sliced, path);
  return input;
}

arrow::Result<InputFile> OpenCsv(const std::string& path,
                                 const std::shared_ptr<arrow::io::ReadableFile>& file,
                                 const InputReadOptions& options) {
  // Arrow's streaming reader finds the column types from the first block, but
  // does not read the rows: it parses one block at a time on one thread
  // (parallel_csv_reader.h).
  ARROW_ASSIGN_OR_RAISE(auto reader, OpenCsvReader(path, file, options));
  InputFile input;
  input.file_schema = reader->schema();
  input.format = FileFormat::kCsv;
  reader.reset();  // stops its reading ahead
  const std::vector<int> kept = FieldIndices(*input.file_schema, options.columns);
  return ReadCsvRows(path, std::move(input), kept, options);
}

}  // namespace

namespace {

// Returns the name of the file beside `path` closest to its name, or "".
std::string ClosestFile(const fs::path& path) {
  std::error_code error;
  const fs::path directory = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(directory, error)) {
    if (entry.is_regular_file(error)) names.push_back(entry.path().filename().string());
  }
  const std::string close = exec::ClosestName(path.filename().string(), names);
  if (close.empty()) return "";
  return path.has_parent_path() ? (path.parent_path() / close).string() : close;
}

}  // namespace

arrow::Status CheckInputPath(const std::string& path) {
  std::error_code error;
  const auto status = fs::status(path, error);
  if (!fs::exists(status)) {
    const fs::path absolute = fs::absolute(path, error);
    const std::string close = ClosestFile(path);
    return arrow::Status::IOError(
        "input file ", path, " does not exist",
        path == absolute.string() ? "" : " (looked at " + absolute.string() + ")",
        close.empty() ? "; check the path" : "; did you mean '" + close + "'?");
  }
  if (fs::is_directory(status)) {
    return arrow::Status::IOError("input ", path,
                                  " is a directory; quiver reads files: name one in it");
  }
  return arrow::Status::OK();
}

InputReadOptions RunReadOptions(int workers) {
  InputReadOptions read;
  const unsigned cores = std::thread::hardware_concurrency();
  read.use_threads = cores >= static_cast<unsigned>(workers) + 2;
  read.read_ahead_batches = kRunReadAheadBatches;
  read.decode_threads = DecodeThreadsOfRun(workers);
  return read;
}

arrow::Result<InputFile> OpenInputFile(const std::string& path, FileFormat format,
                                       int64_t batch_rows) {
  InputReadOptions options;
  options.batch_rows = batch_rows;
  return OpenInputFile(path, format, options);
}

arrow::Result<InputFile> OpenInputFile(const std::string& path, FileFormat format,
                                       const InputReadOptions& options) {
  if (options.batch_rows <= 0) return arrow::Status::Invalid("--batch-rows must be positive");
  if (options.batch_bytes <= 0) return arrow::Status::Invalid("--batch-bytes must be positive");
  ARROW_RETURN_NOT_OK(CheckInputPath(path));
  auto file = arrow::io::ReadableFile::Open(path, io::ReaderMemoryPool());
  if (!file.ok()) {
    return file.status().WithMessage("cannot open input file ", path, ": ",
                                     file.status().message());
  }
  switch (format) {
    case FileFormat::kParquet:
      return OpenParquet(path, *file, options);
    case FileFormat::kCsv:
      return OpenCsv(path, *file, options);
    case FileFormat::kArrowFile:
    case FileFormat::kArrowStream:
      return OpenArrowIpc(path, *file, options);
    case FileFormat::kNoop:
      break;
  }
  return arrow::Status::Invalid("cannot read input in format ", FormatName(format));
}

}  // namespace quiver::input
