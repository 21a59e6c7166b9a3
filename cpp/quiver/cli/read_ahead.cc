#include "quiver/cli/read_ahead.h"

#include <future>
#include <utility>

#include <arrow/result.h>
#include <arrow/status.h>

namespace quiver::cli {
namespace {

using BatchResult = arrow::Result<std::shared_ptr<arrow::RecordBatch>>;

class FirstBatchAheadReader : public arrow::RecordBatchReader {
 public:
  explicit FirstBatchAheadReader(std::shared_ptr<arrow::RecordBatchReader> input)
      : input_(std::move(input)) {
    first_ = std::async(std::launch::async, [reader = input_.get()]() -> BatchResult {
      std::shared_ptr<arrow::RecordBatch> batch;
      ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
      return batch;
    });
  }

  // The future's destructor waits for the read: it never outlives `input_`.
  ~FirstBatchAheadReader() override = default;

  std::shared_ptr<arrow::Schema> schema() const override { return input_->schema(); }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* batch) override {
    if (first_.valid()) {
      ARROW_ASSIGN_OR_RAISE(*batch, first_.get());
      return arrow::Status::OK();
    }
    return input_->ReadNext(batch);
  }

  arrow::Status Close() override {
    if (first_.valid()) first_.wait();
    return input_->Close();
  }

 private:
  std::shared_ptr<arrow::RecordBatchReader> input_;
  std::future<BatchResult> first_;
};

}  // namespace

std::shared_ptr<arrow::RecordBatchReader> ReadFirstBatchAhead(
    std::shared_ptr<arrow::RecordBatchReader> input) {
  return std::make_shared<FirstBatchAheadReader>(std::move(input));
}

}  // namespace quiver::cli
