#include <chrono>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <arrow/array/util.h>
#include <arrow/memory_pool.h>
#include <arrow/type.h>

#include "quiver/exec/argument_plan.h"
#include "quiver/exec/batch_bytes.h"
#include "quiver/exec/rows/arrow_row_writer.h"
#include "quiver/exec/rows/row_batch.h"
#include "quiver/exec/udf_checks.h"
#include "quiver/exec/udf_run_internal.h"
#include "quiver/exec/view_compaction.h"
#include "quiver/exec/worker_init.h"
#include "quiver/exec/worker_pipeline.h"

namespace quiver::exec::internal {
namespace {

// A batch read from the input whose results are not yet out, in input order.
struct PendingBatch {
  uint64_t sequence = 0;
  bool sent = false;  // false: an empty batch, answered without a worker
  std::shared_ptr<arrow::RecordBatch> input;
  int64_t first_row = 0;
};

class UdfRunImpl : public UdfRun {
 public:
  UdfRunImpl(worker::WorkerDispatcher* dispatcher, const UdfOperatorOptions& options,
             std::shared_ptr<arrow::RecordBatchReader> input, ArgumentPlan plan,
             std::vector<int> pass_through, std::string runtime_label)
      : dispatcher_(dispatcher),
        options_(options),
        input_(std::move(input)),
        plan_(std::move(plan)),
        pass_through_(std::move(pass_through)),
        runtime_label_(std::move(runtime_label)) {}

  ~UdfRunImpl() override { Stop(); }

  arrow::Status Start() {
    ARROW_ASSIGN_OR_RAISE(v1::Init init, MakeInit(options_.udfs, *plan_.schema(), plan_.offsets()));
    PipelineOptions pipeline;
    pipeline.workers = options_.workers;
    pipeline.max_batches_in_flight_per_worker = options_.max_batches_in_flight_per_worker;
    pipeline.max_bytes_in_flight_per_worker = options_.max_bytes_in_flight_per_worker;
    pipeline.label = "running UDFs " + QuotedNames(options_.udfs) + runtime_label_;
    pipeline.runtime = options_.udfs.empty() ? "" : options_.udfs.front().runtime;
    auto started = WorkerPipeline::Start(dispatcher_, init, std::move(pipeline));
    if (!started.ok()) return Failed(started.status());
    pipeline_ = std::move(started).ValueUnsafe();
    return MakeOutputSchema(pipeline_->result_schema());
  }

  std::shared_ptr<arrow::Schema> schema() const override { return output_schema_; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    *out = nullptr;
    if (!failure_.ok()) return failure_;
    if (finished_) return arrow::Status::OK();
    ARROW_RETURN_NOT_OK(FillWindow());
    if (pending_.empty()) return FinishWorkers();
    PendingBatch batch = std::move(pending_.front());
    pending_.pop_front();
    ARROW_ASSIGN_OR_RAISE(auto results, ResultsOf(batch));
    *out = Combine(*batch.input, *results);
    std::lock_guard<std::mutex> lock(metrics_mutex_);
    metrics_.batches += 1;
    metrics_.rows += batch.input->num_rows();
    return arrow::Status::OK();
  }

  arrow::Status Close() override {
    Stop();
    return arrow::Status::OK();
  }

  UdfRunMetrics metrics() const override {
    std::lock_guard<std::mutex> lock(metrics_mutex_);
    return metrics_;
  }

 private:
  arrow::Status MakeOutputSchema(const std::shared_ptr<arrow::Schema>& results) {
    const auto& input = *input_->schema();
    arrow::FieldVector fields;
    for (int index : pass_through_) fields.push_back(input.field(index));
    for (int i = 0; i < results->num_fields(); ++i) {
      // Fields past the UDFs' own are their NAME__error columns (checked by the worker execution).
      const bool is_udf = i < static_cast<int>(options_.udfs.size());
      const auto& declared = is_udf ? options_.udfs[i].return_type : nullptr;
      if (declared != nullptr && !declared->Equals(*results->field(i)->type())) {
        return Fail(arrow::Status::TypeError("UDF '", options_.udfs[i].name, "' returns ",
                                             results->field(i)->type()->ToString(),
                                             " but the engine declared ", declared->ToString()),
                    "while starting");
      }
      fields.push_back(results->field(i));
    }
    output_schema_ = arrow::schema(std::move(fields));
    return arrow::Status::OK();
  }

  // Reads input batches and sends them, cut to the byte cap, until every
  // worker's window is full.
  arrow::Status FillWindow() {
    // Empty batches count too: the window bounds how far the input is read ahead.
    while (pending_.size() < pipeline_->window() && !pipeline_->Full()) {
      if (cutting_.input == nullptr) {
        if (input_done_) break;
        ARROW_RETURN_NOT_OK(ReadInput());
        continue;
      }
      ARROW_RETURN_NOT_OK(SendNextPiece());
    }
    return arrow::Status::OK();
  }

  // Reads the next input batch into `cutting_` (an empty one is answered
  // without a worker).
  arrow::Status ReadInput() {
    std::shared_ptr<arrow::RecordBatch> batch;
    const auto reading_since = std::chrono::steady_clock::now();
    arrow::Status read = input_->ReadNext(&batch);
    const auto read_time = std::chrono::steady_clock::now() - reading_since;
    {
      std::lock_guard<std::mutex> lock(metrics_mutex_);
      metrics_.read_time += read_time;
    }
    if (!read.ok()) return Fail(read.WithMessage("reading the input: ", read.message()), "");
    if (batch == nullptr) {
      input_done_ = true;
      return arrow::Status::OK();
    }
    if (options_.input_mode == InputMode::kRows) {
      auto rebuilt = ThroughRows(*batch);
      if (!rebuilt.ok()) return Fail(rebuilt.status(), "turning the input into rows");
      batch = std::move(rebuilt).ValueUnsafe();
    }
    {
      // What the batch references: a zero-copy slice counts its rows only.
      auto measured = BatchBytes(*batch);
      const int64_t bytes = measured.ok() ? *measured : BatchBytesUpperBound(*batch);
      std::lock_guard<std::mutex> lock(metrics_mutex_);
      metrics_.bytes_in += bytes;
    }
    if (batch->num_rows() == 0) {
      pending_.push_back(PendingBatch{next_sequence_++, false, batch, rows_read_});
      return arrow::Status::OK();
    }
    auto arguments = plan_.Build(batch);
    if (!arguments.ok()) {
      return Fail(arguments.status(),
                  "on " + Batch(PendingBatch{next_sequence_, false, batch, rows_read_}));
    }
    cutting_ = {std::move(batch), std::move(arguments).ValueUnsafe(), 0};
    return arrow::Status::OK();
  }

  // Sends the next piece of `cutting_` within the byte cap: the whole batch
  // when it fits, as almost every batch does.
  arrow::Status SendNextPiece() {
    const int64_t rows = cutting_.input->num_rows();
    int64_t take = rows;
    if (cutting_.offset > 0 ||
        BatchBytesUpperBound(*cutting_.arguments) > options_.max_batch_bytes) {
      auto fit = RowsThatFit(*cutting_.arguments, cutting_.offset, options_.max_batch_bytes);
      if (!fit.ok()) return Fail(fit.status(), "measuring the bytes of an input batch");
      take = *fit;
    }
    const bool whole = take == rows;
    PendingBatch pending{next_sequence_++, true,
                         whole ? cutting_.input : cutting_.input->Slice(cutting_.offset, take),
                         rows_read_};
    auto arguments = CompactViewColumns(
        whole ? cutting_.arguments : cutting_.arguments->Slice(cutting_.offset, take),
        arrow::default_memory_pool());
    if (!arguments.ok()) return Fail(arguments.status(), "on " + Batch(pending));
    rows_read_ += take;
    cutting_.offset += take;
    if (cutting_.offset >= rows) cutting_ = {};
    arrow::Status sent = pipeline_->Submit(**arguments, pending.input->num_rows(),
                                           static_cast<int64_t>(pending.sequence), Batch(pending));
    if (!sent.ok()) return Failed(sent);
    pending_.push_back(std::move(pending));
    return arrow::Status::OK();
  }

  // Path 2: the batch as a row engine holds it, then appended back to Arrow
  // builders row by row.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> ThroughRows(const arrow::RecordBatch& batch) {
    if (row_writer_ == nullptr) {
      ARROW_ASSIGN_OR_RAISE(row_writer_, rows::ArrowRowWriter::Make(batch.schema()));
    }
    ARROW_ASSIGN_OR_RAISE(rows::RowBatch row_batch, rows::ColumnarToRows(batch));
    ARROW_RETURN_NOT_OK(row_writer_->AppendAll(row_batch));
    return row_writer_->Flush();
  }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> ResultsOf(const PendingBatch& batch) {
    if (!batch.sent) {
      ARROW_ASSIGN_OR_RAISE(auto empty, arrow::RecordBatch::MakeEmpty(pipeline_->result_schema()));
      return empty;
    }
    auto answer = pipeline_->Next();
    if (!answer.ok()) return Failed(answer.status());
    return std::move(answer->result);
  }

  std::shared_ptr<arrow::RecordBatch> Combine(const arrow::RecordBatch& input,
                                              const arrow::RecordBatch& results) const {
    std::vector<std::shared_ptr<arrow::Array>> columns;
    columns.reserve(pass_through_.size() + results.num_columns());
    // Pass-through columns go out as they came in: the same arrays, no copy.
    for (int index : pass_through_) columns.push_back(input.column(index));
    for (const auto& column : results.columns()) columns.push_back(column);
    return arrow::RecordBatch::Make(output_schema_, input.num_rows(), std::move(columns));
  }

  std::vector<std::string> UdfNames() const {
    std::vector<std::string> names;
    for (const auto& udf : options_.udfs) names.push_back(udf.name);
    return names;
  }

  static std::string Batch(const PendingBatch& batch) {
    const int64_t rows = batch.input->num_rows();
    return "batch " + std::to_string(batch.sequence) + " (rows " + std::to_string(batch.first_row) +
           "-" + std::to_string(batch.first_row + rows - 1) + ")";
  }

  // Records the first failure (labelled by the pipeline, with where it
  // happened), stops the run and returns the failure.
  arrow::Status Fail(const arrow::Status& status, const std::string& where) {
    if (pipeline_ == nullptr) return Failed(status);
    return Failed(pipeline_->Fail(status, where));
  }

  // Records `failure`, already labelled, and stops the run.
  arrow::Status Failed(const arrow::Status& failure) {
    if (failure_.ok()) failure_ = failure;
    Stop();
    return failure_;
  }

  arrow::Status FinishWorkers() {
    finished_ = true;
    auto udf_nanos = pipeline_->Finish();
    if (!udf_nanos.ok()) return Failed(udf_nanos.status());
    {
      std::lock_guard<std::mutex> lock(metrics_mutex_);
      metrics_.worker_udf_time += std::chrono::nanoseconds(*udf_nanos);
    }
    Stop();
    return arrow::Status::OK();
  }

  // Ends the workers' execution (Cancel when unfinished) and gives them back.
  void Stop() {
    finished_ = true;
    if (pipeline_ != nullptr) {
      pipeline_->Stop();
      std::lock_guard<std::mutex> lock(metrics_mutex_);
      UdfGroupMetrics group;
      group.udfs = UdfNames();
      group.workers = pipeline_->worker_metrics();
      group.worker_starts = pipeline_->worker_starts();
      group.batch_spans = pipeline_->batch_spans();
      metrics_.groups = {std::move(group)};
    }
    pending_.clear();
    cutting_ = {};
  }

  worker::WorkerDispatcher* dispatcher_;
  const UdfOperatorOptions options_;  // a copy: a run may outlive its operator
  std::shared_ptr<arrow::RecordBatchReader> input_;
  ArgumentPlan plan_;
  std::vector<int> pass_through_;
  const std::string runtime_label_;
  std::unique_ptr<rows::ArrowRowWriter> row_writer_;  // rows input mode only
  std::shared_ptr<arrow::Schema> output_schema_;
  std::unique_ptr<WorkerPipeline> pipeline_;
  std::deque<PendingBatch> pending_;
  // The input batch being sent in pieces, and the first row not sent yet.
  struct Cutting {
    std::shared_ptr<arrow::RecordBatch> input;
    std::shared_ptr<arrow::RecordBatch> arguments;
    int64_t offset = 0;
  } cutting_;
  uint64_t next_sequence_ = 0;
  int64_t rows_read_ = 0;
  bool input_done_ = false;
  bool finished_ = false;
  arrow::Status failure_;
  mutable std::mutex metrics_mutex_;
  UdfRunMetrics metrics_;
};

}  // namespace

arrow::Result<std::shared_ptr<UdfRun>> StartUdfRun(worker::WorkerDispatcher* dispatcher,
                                                   const UdfOperatorOptions& options,
                                                   std::shared_ptr<arrow::RecordBatchReader> input,
                                                   const std::string& runtime_label) {
  const auto input_schema = input->schema();
  ARROW_ASSIGN_OR_RAISE(std::vector<int> pass_through, ResolvePassThrough(options, *input_schema));
  ARROW_ASSIGN_OR_RAISE(ArgumentPlan plan, ArgumentPlan::Make(options.udfs, *input_schema));
  auto run = std::make_shared<UdfRunImpl>(dispatcher, options, std::move(input), std::move(plan),
                                          std::move(pass_through), runtime_label);
  ARROW_RETURN_NOT_OK(run->Start());
  return run;
}

}  // namespace quiver::exec::internal
