#include "quiver/input/parallel_csv_reader.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <arrow/buffer.h>
#include <arrow/csv/reader.h>
#include <arrow/io/interfaces.h>
#include <arrow/io/memory.h>
#include <arrow/status.h>
#include <arrow/table.h>

#include "quiver/input/ordered_decoder.h"
#include "quiver/io/recycling_pool.h"

namespace quiver::input {
namespace {

// Where the next block starts, and the lines before it (for error messages).
struct CsvCursor {
  int64_t offset = 0;
  int64_t line = 1;  // the header's line number; rows start after it
};

// Returns the position just after the last '\n' in `bytes`, or 0 when none.
int64_t AfterLastNewline(const arrow::Buffer& bytes) {
  const auto* begin = bytes.data();
  for (int64_t i = bytes.size(); i > 0; --i) {
    if (begin[i - 1] == '\n') return i;
  }
  return 0;
}

// Reads the next block at `cursor`: about `block_bytes`, ending at a line end
// (or the file's end), widened while one line is longer than the block.
arrow::Result<std::shared_ptr<arrow::Buffer>> ReadBlock(arrow::io::RandomAccessFile& file,
                                                        int64_t size, int64_t offset,
                                                        int64_t block_bytes) {
  for (int64_t want = block_bytes;; want *= 2) {
    ARROW_ASSIGN_OR_RAISE(auto bytes, file.ReadAt(offset, std::min(want, size - offset)));
    if (offset + bytes->size() >= size) return bytes;
    if (bytes->size() == 0) return arrow::Status::IOError("the file ended early at byte ", offset);
    const int64_t end = AfterLastNewline(*bytes);
    if (end > 0) return arrow::SliceBuffer(bytes, 0, end);
  }
}

// Parses and converts one block whole on the calling thread.
arrow::Result<std::shared_ptr<arrow::RecordBatch>> ParseBlock(
    const std::shared_ptr<arrow::Buffer>& block, const std::vector<std::string>& names,
    const std::shared_ptr<arrow::Schema>& read_schema,
    const arrow::csv::ParseOptions& parse_options,
    const arrow::csv::ConvertOptions& convert_options) {
  auto read_options = arrow::csv::ReadOptions::Defaults();
  // The serial table reader: parsed here, on this decode thread.
  read_options.use_threads = false;
  read_options.column_names = names;
  read_options.block_size = static_cast<int32_t>(
      std::min<int64_t>(std::numeric_limits<int32_t>::max(), std::max<int64_t>(1, block->size())));
  ARROW_ASSIGN_OR_RAISE(
      auto reader, arrow::csv::TableReader::Make(arrow::io::IOContext(io::ReaderMemoryPool()),
                                                 std::make_shared<arrow::io::BufferReader>(block),
                                                 read_options, parse_options, convert_options));
  ARROW_ASSIGN_OR_RAISE(auto table, reader->Read());
  if (table->num_rows() == 0) return arrow::RecordBatch::MakeEmpty(read_schema);
  ARROW_ASSIGN_OR_RAISE(auto batch, table->CombineChunksToBatch());
  return batch->ReplaceSchema(read_schema);
}

// Says where in the file an error of the block of lines first-last is: Arrow
// numbers the block's rows from 1 ("Row #N"), which is line first + N - 1 of
// the file, as every line is a row (a quoted value holding a line end, which
// Arrow parses within a block, shifts it); without a row number, the block's lines.
arrow::Status PlacedInFile(const arrow::Status& error, int64_t first, int64_t last) {
  constexpr std::string_view kRow = "Row #";
  const std::string& message = error.message();
  const auto at = message.find(kRow);
  if (at != std::string::npos) {
    auto digits = at + kRow.size();
    int64_t row = 0;
    while (digits < message.size() && std::isdigit(static_cast<unsigned char>(message[digits]))) {
      row = row * 10 + (message[digits++] - '0');
    }
    if (row > 0) {
      return error.WithMessage(message.substr(0, at), "line ", first + row - 1,
                               message.substr(digits));
    }
  }
  return error.WithMessage("in lines ", first, "-", last, ": ", message);
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ReadCsvInParallel(
    std::shared_ptr<arrow::io::RandomAccessFile> file, const CsvLayout& layout,
    const arrow::csv::ParseOptions& parse_options, arrow::csv::ConvertOptions convert_options,
    int threads) {
  if (threads < 1) return arrow::Status::Invalid("decode threads must be at least 1");
  ARROW_ASSIGN_OR_RAISE(const int64_t size, file->GetSize());
  std::vector<std::string> names;
  for (const auto& field : layout.file_schema->fields()) {
    names.push_back(field->name());
    convert_options.column_types[field->name()] = field->type();
  }
  // The header is the first line: the rows start after it.
  ARROW_ASSIGN_OR_RAISE(auto first, ReadBlock(*file, size, 0, layout.block_bytes));
  auto cursor = std::make_shared<CsvCursor>();
  const void* header_end = std::memchr(first->data(), '\n', first->size());
  cursor->offset =
      header_end == nullptr ? size : static_cast<const uint8_t*>(header_end) - first->data() + 1;
  ClaimPiece claim = [file, size, cursor, block_bytes = std::max<int64_t>(1, layout.block_bytes),
                      names, read_schema = layout.read_schema, parse_options,
                      convert_options]() -> arrow::Result<std::optional<DecodePiece>> {
    if (cursor->offset >= size) return std::nullopt;
    auto block = ReadBlock(*file, size, cursor->offset, block_bytes);
    if (!block.ok()) {
      return block.status().WithMessage("at byte ", cursor->offset, ": ", block.status().message());
    }
    const auto* begin = (*block)->data();
    const int64_t lines = std::count(begin, begin + (*block)->size(), '\n');
    const int64_t first_line = cursor->line + 1;
    const int64_t last_line = std::max(first_line, cursor->line + lines);
    cursor->offset += (*block)->size();
    cursor->line += lines;
    return DecodePiece([block = std::move(block).ValueUnsafe(), first_line, last_line, &names,
                        read_schema, parse_options, convert_options](
                           int) mutable -> arrow::Result<std::shared_ptr<arrow::RecordBatch>> {
      auto batch = ParseBlock(block, names, read_schema, parse_options, convert_options);
      block.reset();  // the bytes are no longer needed once parsed
      if (!batch.ok()) return PlacedInFile(batch.status(), first_line, last_line);
      return batch;
    });
  };
  OrderedDecodeOptions options;
  options.threads = threads;
  return DecodeInOrder(layout.read_schema, std::move(claim), options);
}

}  // namespace quiver::input
