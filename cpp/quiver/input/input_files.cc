#include "quiver/input/input_files.h"

#include <algorithm>
#include <memory>
#include <utility>

#include <arrow/record_batch.h>
#include <arrow/status.h>
#include <arrow/type.h>

#include "quiver/exec/argument_plan.h"
#include "quiver/input/file_format.h"

namespace quiver::input {
namespace {

// A path with the format it is read as.
struct PathToRead {
  std::string path;
  FileFormat format;
};

// Reads the files one after the other, opening each once the one before ends.
class ChainedFilesReader : public arrow::RecordBatchReader {
 public:
  ChainedFilesReader(std::vector<PathToRead> files, InputReadOptions options,
                     std::shared_ptr<arrow::RecordBatchReader> first)
      : files_(std::move(files)), options_(std::move(options)), current_(std::move(first)) {
    schema_ = current_->schema();
  }

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    while (current_ != nullptr) {
      ARROW_RETURN_NOT_OK(current_->ReadNext(out));
      if (*out != nullptr) return arrow::Status::OK();
      current_ = nullptr;  // its threads stop before the next file's start
      if (++index_ < files_.size()) ARROW_RETURN_NOT_OK(OpenCurrent());
    }
    *out = nullptr;
    return arrow::Status::OK();
  }

  arrow::Status Close() override {
    current_ = nullptr;
    index_ = files_.size();
    return arrow::Status::OK();
  }

 private:
  arrow::Status OpenCurrent() {
    const PathToRead& next = files_[index_];
    ARROW_ASSIGN_OR_RAISE(InputFile input, OpenInputFile(next.path, next.format, options_));
    if (!input.reader->schema()->Equals(*schema_, /*check_metadata=*/false)) {
      return arrow::Status::Invalid("input file ", next.path, " has the columns ",
                                    input.reader->schema()->ToString(), "\nwhere ",
                                    files_.front().path, " has ", schema_->ToString(),
                                    "\nthe files read together must have the same columns");
    }
    current_ = std::move(input.reader);
    return arrow::Status::OK();
  }

  std::vector<PathToRead> files_;
  InputReadOptions options_;
  std::shared_ptr<arrow::Schema> schema_;
  std::shared_ptr<arrow::RecordBatchReader> current_;  // null once read to the end
  size_t index_ = 0;
};

}  // namespace

arrow::Result<InputFile> OpenInputFiles(const std::vector<std::string>& paths,
                                        const std::optional<std::string>& format,
                                        const InputReadOptions& options) {
  if (paths.empty()) return arrow::Status::Invalid("no input file given; name at least one");
  std::vector<PathToRead> files;
  for (const auto& path : paths) {
    ARROW_ASSIGN_OR_RAISE(FileFormat file_format,
                          ResolveInputFormat(path, format, options.format_option));
    ARROW_RETURN_NOT_OK(CheckInputPath(path));
    files.push_back({path, file_format});
  }
  ARROW_ASSIGN_OR_RAISE(InputFile first, OpenInputFile(files[0].path, files[0].format, options));
  if (files.size() == 1) return first;
  first.total_rows = std::nullopt;
  first.reader =
      std::make_shared<ChainedFilesReader>(std::move(files), options, std::move(first.reader));
  return first;
}

std::optional<std::vector<std::string>> NeededColumns(
    const std::vector<exec::UdfCall>& calls,
    const std::optional<std::vector<std::string>>& pass_through) {
  if (!pass_through) return std::nullopt;
  auto names = exec::ArgumentColumnNames(calls);
  if (!names) return std::nullopt;
  for (const auto& name : *pass_through) {
    if (std::find(names->begin(), names->end(), name) == names->end()) names->push_back(name);
  }
  return names;
}

}  // namespace quiver::input
