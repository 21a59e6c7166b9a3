#include <chrono>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <arrow/array/util.h>
#include <arrow/memory_pool.h>
#include <arrow/type.h>
#include <arrow/util/byte_size.h>

#include "quiver/exec/argument_plan.h"
#include "quiver/exec/batch_bytes.h"
#include "quiver/exec/in_flight_bytes.h"
#include "quiver/exec/rows/arrow_row_writer.h"
#include "quiver/exec/rows/row_batch.h"
#include "quiver/exec/udf_checks.h"
#include "quiver/exec/udf_run_internal.h"
#include "quiver/exec/view_compaction.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/version.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_session.h"

namespace quiver::exec::internal {
namespace {

// A batch read from the input whose results are not yet out, in input order.
struct PendingBatch {
  uint64_t sequence = 0;
  int session = -1;  // -1: an empty batch, answered without a worker
  std::shared_ptr<arrow::RecordBatch> input;
  int64_t first_row = 0;
};

std::string UdfNames(const std::vector<UdfCall>& udfs) {
  std::string names;
  for (const auto& udf : udfs) names += (names.empty() ? "'" : ", '") + udf.name + "'";
  return names;
}

arrow::Result<v1::Init> MakeInit(const std::vector<UdfCall>& udfs, const ArgumentPlan& plan) {
  v1::Init init;
  init.set_protocol_version(protocol::kProtocolVersion);
  init.set_data_format(v1::ARROW_IPC_STREAM);
  ARROW_ASSIGN_OR_RAISE(*init.mutable_input_schema(), protocol::SerializeSchema(*plan.schema()));
  init.set_session_time_zone("UTC");
  for (size_t i = 0; i < udfs.size(); ++i) {
    v1::UdfDefinition* definition = init.add_udfs();
    definition->set_name(udfs[i].name);
    definition->set_payload_format(udfs[i].payload_format);
    definition->set_payload(udfs[i].payload);
    definition->set_constructor_args(udfs[i].constructor_args);
    definition->set_call_options(udfs[i].call_options);
    for (int offset : plan.offsets()[i]) definition->add_argument_offsets(offset);
    if (udfs[i].return_type != nullptr) {
      ARROW_ASSIGN_OR_RAISE(*definition->mutable_return_type(),
                            protocol::SerializeSchema(
                                *arrow::schema({arrow::field(udfs[i].name, udfs[i].return_type)})));
    }
  }
  return init;
}

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
        runtime_label_(std::move(runtime_label)),
        in_flight_bytes_(options.max_bytes_in_flight_per_worker, options.workers) {}

  ~UdfRunImpl() override { Stop(); }

  arrow::Status Start() {
    ARROW_ASSIGN_OR_RAISE(v1::Init init, MakeInit(options_.udfs, plan_));
    auto workers = dispatcher_->AcquireMany(options_.workers);
    // A runtime's workers that do not start are named with the runtime.
    if (!workers.ok() && !runtime_label_.empty()) return Fail(workers.status(), "while starting");
    ARROW_ASSIGN_OR_RAISE(workers_, std::move(workers));
    for (auto& worker : workers_) {
      auto session = worker::WorkerSession::Start(worker.get(), init);
      if (!session.ok()) return Fail(session.status(), "while starting");
      sessions_.push_back(std::move(session).ValueUnsafe());
    }
    for (auto& session : sessions_) {
      arrow::Status ready = session->WaitUntilReady();
      if (!ready.ok()) return Fail(ready, "while starting");
    }
    return MakeOutputSchema(sessions_.front()->result_schema());
  }

  std::shared_ptr<arrow::Schema> schema() const override { return output_schema_; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    *out = nullptr;
    if (!failure_.ok()) return failure_;
    if (finished_) return arrow::Status::OK();
    ARROW_RETURN_NOT_OK(FillWindow());
    if (pending_.empty()) return FinishSessions();
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
    for (size_t i = 1; i < sessions_.size(); ++i) {
      if (!sessions_[i]->result_schema()->Equals(*results)) {
        return Fail(
            arrow::Status::Invalid("workers disagree on the result types: ", results->ToString(),
                                   " vs ", sessions_[i]->result_schema()->ToString()),
            "while starting");
      }
    }
    const auto& input = *input_->schema();
    arrow::FieldVector fields;
    for (int index : pass_through_) fields.push_back(input.field(index));
    for (int i = 0; i < results->num_fields(); ++i) {
      // Fields past the UDFs' own are their NAME__error columns (checked by the session).
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
    const size_t window = sessions_.size() * options_.max_batches_in_flight_per_worker;
    while (pending_.size() < window && in_flight_bytes_.Allows(pending_.size())) {
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
    arrow::Status read = input_->ReadNext(&batch);
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
      std::lock_guard<std::mutex> lock(metrics_mutex_);
      metrics_.bytes_in += arrow::util::TotalBufferSize(*batch);
    }
    if (batch->num_rows() == 0) {
      pending_.push_back(PendingBatch{next_sequence_++, -1, batch, rows_read_});
      return arrow::Status::OK();
    }
    auto arguments = plan_.Build(batch);
    if (!arguments.ok()) {
      return Fail(arguments.status(), Where(PendingBatch{next_sequence_, -1, batch, rows_read_}));
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
    PendingBatch pending{next_sequence_++, -1,
                         whole ? cutting_.input : cutting_.input->Slice(cutting_.offset, take),
                         rows_read_};
    auto arguments = CompactViewColumns(
        whole ? cutting_.arguments : cutting_.arguments->Slice(cutting_.offset, take),
        arrow::default_memory_pool());
    if (!arguments.ok()) return Fail(arguments.status(), Where(pending));
    rows_read_ += take;
    cutting_.offset += take;
    if (cutting_.offset >= rows) cutting_ = {};
    // What this piece's arguments reference, not the whole buffers it slices.
    auto piece_bytes = BatchBytes(**arguments);
    in_flight_bytes_.SawInput(piece_bytes.ok() ? *piece_bytes : BatchBytesUpperBound(**arguments));
    ARROW_RETURN_NOT_OK(Send(&pending, **arguments));
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

  arrow::Status Send(PendingBatch* pending, const arrow::RecordBatch& arguments) {
    pending->session = next_session_;
    next_session_ = (next_session_ + 1) % static_cast<int>(sessions_.size());
    arrow::Status sent = sessions_[pending->session]->Send(pending->sequence, arguments);
    if (!sent.ok()) return Fail(sent, Where(*pending));
    return arrow::Status::OK();
  }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> ResultsOf(const PendingBatch& batch) {
    const auto& results = sessions_.front()->result_schema();
    if (batch.session < 0) {
      ARROW_ASSIGN_OR_RAISE(auto empty, arrow::RecordBatch::MakeEmpty(results));
      return empty;
    }
    auto received = sessions_[batch.session]->Receive(batch.sequence, batch.input->num_rows());
    if (!received.ok()) return Fail(received.status(), Where(batch));
    in_flight_bytes_.SawResult(arrow::util::TotalBufferSize(**received));
    return received;
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

  std::string Where(const PendingBatch& batch) const {
    const int64_t rows = batch.input->num_rows();
    std::string where = "on batch " + std::to_string(batch.sequence) + " (rows " +
                        std::to_string(batch.first_row) + "-" +
                        std::to_string(batch.first_row + rows - 1) + ")";
    if (batch.session >= 0) where += " in " + workers_[batch.session]->Describe();
    return where;
  }

  // Records the first failure, stops every session, and returns the failure
  // with where it happened.
  arrow::Status Fail(const arrow::Status& status, const std::string& where) {
    if (failure_.ok()) {
      failure_ =
          status.WithMessage("running UDFs ", UdfNames(options_.udfs), runtime_label_,
                             where.empty() ? "" : " " + where, " failed: ", status.message());
    }
    Stop();
    return failure_;
  }

  arrow::Status FinishSessions() {
    finished_ = true;
    for (auto& session : sessions_) {
      auto metrics = session->Finish();
      if (!metrics.ok()) return Fail(metrics.status(), "while finishing");
      std::lock_guard<std::mutex> lock(metrics_mutex_);
      metrics_.worker_udf_time += std::chrono::nanoseconds(metrics->udf_nanos());
    }
    Stop();
    return arrow::Status::OK();
  }

  // Ends every session (Cancel when unfinished) and gives the workers back.
  void Stop() {
    finished_ = true;
    sessions_.clear();  // aborts unfinished sessions and joins their threads
    for (auto& worker : workers_) dispatcher_->Release(std::move(worker));
    workers_.clear();
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
  std::vector<std::unique_ptr<worker::Worker>> workers_;
  std::vector<std::unique_ptr<worker::WorkerSession>> sessions_;
  std::deque<PendingBatch> pending_;
  // The input batch being sent in pieces, and the first row not sent yet.
  struct Cutting {
    std::shared_ptr<arrow::RecordBatch> input;
    std::shared_ptr<arrow::RecordBatch> arguments;
    int64_t offset = 0;
  } cutting_;
  InFlightBytes in_flight_bytes_;
  int next_session_ = 0;
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
