#include "quiver/exec/worker_pipeline.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include <arrow/type.h>
#include <arrow/util/byte_size.h>

#include "quiver/exec/batch_bytes.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_execution.h"

namespace quiver::exec {
namespace {

int64_t UnixNanos(std::chrono::system_clock::time_point at) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
}

}  // namespace

arrow::Status CheckAtLeastOne(const std::string& name, int64_t value) {
  if (value >= 1) return arrow::Status::OK();
  return arrow::Status::Invalid(name, " must be at least 1, not ", value);
}

arrow::Status CheckPipelineOptions(const PipelineOptions& options, const OptionNames& names) {
  ARROW_RETURN_NOT_OK(CheckAtLeastOne(names.workers, options.workers));
  return CheckAtLeastOne(names.max_in_flight, options.max_batches_in_flight_per_worker);
}

WorkerPipeline::WorkerPipeline(worker::WorkerDispatcher* dispatcher, PipelineOptions options)
    : dispatcher_(dispatcher),
      options_(std::move(options)),
      in_flight_bytes_(options_.max_bytes_in_flight_per_worker, options_.workers) {}

WorkerPipeline::~WorkerPipeline() { Stop(); }

arrow::Result<std::unique_ptr<WorkerPipeline>> WorkerPipeline::Start(
    worker::WorkerDispatcher* dispatcher, const v1::Init& init, PipelineOptions options) {
  ARROW_RETURN_NOT_OK(CheckPipelineOptions(options));
  std::unique_ptr<WorkerPipeline> pipeline(new WorkerPipeline(dispatcher, std::move(options)));
  ARROW_RETURN_NOT_OK(pipeline->StartWorkers(init));
  return pipeline;
}

arrow::Status WorkerPipeline::StartWorkers(const v1::Init& init) {
  trace_batches_ = dispatcher_->spec().trace_batches;
  const auto asked = std::chrono::system_clock::now();  // the worker start spans begin here
  auto acquired = dispatcher_->AcquireMany(options_.workers);
  if (!acquired.ok()) return Fail(acquired.status(), "while starting");
  workers_ = std::move(acquired).ValueUnsafe();
  workers_count_ = static_cast<int>(workers_.size());
  worker_metrics_.resize(workers_.size());
  last_answers_.resize(workers_.size());
  std::vector<bool> started(workers_.size());  // not reused from the pool
  for (size_t i = 0; i < workers_.size(); ++i) {
    worker_metrics_[i].worker = workers_[i]->Describe();
    started[i] = workers_[i]->executions() == 0;
  }
  // Every worker loads its UDFs at once; then each answer is waited for.
  for (auto& worker : workers_) {
    auto execution = worker::WorkerExecution::Start(worker.get(), init);
    if (!execution.ok()) return Fail(execution.status(), "while starting");
    executions_.push_back(std::move(execution).ValueUnsafe());
  }
  for (size_t i = 0; i < executions_.size(); ++i) {
    auto& execution = executions_[i];
    arrow::Status ready = execution->WaitUntilReady();
    if (!ready.ok()) return Fail(ready, "while starting");
    last_answers_[i] = execution->last_reply_arrival();
    if (started[i]) {
      worker_starts_.push_back({workers_[i]->Describe(), options_.runtime, static_cast<int>(i),
                                workers_[i]->pid(), UnixNanos(asked),
                                UnixNanos(execution->last_reply_arrival())});
    }
    const auto& schema = execution->result_schema();
    if (result_schema_ == nullptr) {
      result_schema_ = schema;
    } else if (!result_schema_->Equals(*schema, /*check_metadata=*/false)) {
      return Fail(arrow::Status::Invalid("workers disagree on the result schema: ",
                                         result_schema_->ToString(), " vs ", schema->ToString()),
                  "while starting");
    }
  }
  return arrow::Status::OK();
}

size_t WorkerPipeline::window() const {
  return static_cast<size_t>(workers_count_) *
         static_cast<size_t>(options_.max_batches_in_flight_per_worker);
}

bool WorkerPipeline::Full() const {
  return pending_.size() >= window() || !in_flight_bytes_.Allows(pending_.size());
}

arrow::Status WorkerPipeline::Submit(const arrow::RecordBatch& batch, int64_t expected_rows,
                                     int64_t tag, std::string what) {
  if (!failure_.ok()) return failure_;
  Pending pending;
  pending.sequence = next_sequence_++;
  pending.worker = next_worker_;
  pending.rows = expected_rows;
  pending.tag = tag;
  pending.what = std::move(what);
  next_worker_ = (next_worker_ + 1) % workers_count_;
  // What the batch references, not the whole buffers it may slice.
  auto measured = BatchBytes(batch);
  const int64_t bytes = measured.ok() ? *measured : BatchBytesUpperBound(batch);
  if (BatchSampled(pending.sequence, trace_batches_) && batch_spans_.size() < kMaxBatchSpans) {
    pending.sampled = true;
    pending.rows_sent = batch.num_rows();
    pending.bytes = bytes;
    pending.sent = std::chrono::system_clock::now();
  }
  if (options_.max_bytes_in_flight_per_worker > 0) in_flight_bytes_.SawInput(bytes);
  arrow::Status sent = executions_[pending.worker]->Send(pending.sequence, batch);
  if (!sent.ok()) return Fail(sent, Where(pending));
  WorkerMetrics& metrics = worker_metrics_[pending.worker];
  metrics.batches += 1;
  metrics.rows_in += batch.num_rows();
  metrics.bytes_in += bytes;
  pending_.push_back(std::move(pending));
  return arrow::Status::OK();
}

arrow::Result<Answer> WorkerPipeline::Next() {
  if (!failure_.ok()) return failure_;
  if (pending_.empty())
    return arrow::Status::Invalid(options_.label, ": no batch awaits an answer");
  Pending pending = std::move(pending_.front());
  pending_.pop_front();
  const auto waiting_since = std::chrono::steady_clock::now();
  auto result = executions_[pending.worker]->Receive(pending.sequence, pending.rows);
  WorkerMetrics& metrics = worker_metrics_[pending.worker];
  metrics.wait_nanos += std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now() - waiting_since)
                            .count();
  if (!result.ok()) return Fail(result.status(), Where(pending));
  const int64_t result_bytes = arrow::util::TotalBufferSize(**result);
  in_flight_bytes_.SawResult(result_bytes);
  metrics.rows_out += (*result)->num_rows();
  auto answered = BatchBytes(**result);
  metrics.bytes_out += answered.ok() ? *answered : result_bytes;
  NoteAnswer(pending, **result, answered.ok() ? *answered : result_bytes);
  return Answer{pending.tag, pending.worker, std::move(result).ValueUnsafe()};
}

arrow::Result<int64_t> WorkerPipeline::Finish() {
  if (!failure_.ok()) return failure_;
  int64_t udf_nanos = 0;
  for (size_t i = 0; i < executions_.size(); ++i) {
    auto metrics = executions_[i]->Finish();
    if (!metrics.ok()) return Fail(metrics.status(), "while finishing");
    worker_metrics_[i].cpu_nanos = std::max<int64_t>(0, executions_[i]->CpuNanos());
    arrow::Status taken = TakeReportedMetrics(*metrics, &worker_metrics_[i]);
    if (!taken.ok()) return Fail(taken, "while finishing in " + workers_[i]->Describe());
    udf_nanos += worker_metrics_[i].udf_nanos;
  }
  Stop();
  return udf_nanos;
}

arrow::Status WorkerPipeline::SubmitInTurn(const arrow::RecordBatch& batch, int64_t expected_rows,
                                           int64_t tag, std::string what,
                                           const AnswerHandler& handle) {
  while (Full()) {
    ARROW_ASSIGN_OR_RAISE(Answer answer, Next());
    ARROW_RETURN_NOT_OK(handle(std::move(answer)));
  }
  return Submit(batch, expected_rows, tag, std::move(what));
}

arrow::Result<int64_t> WorkerPipeline::DrainAndFinish(const AnswerHandler& handle) {
  while (!Empty()) {
    ARROW_ASSIGN_OR_RAISE(Answer answer, Next());
    ARROW_RETURN_NOT_OK(handle(std::move(answer)));
  }
  return Finish();
}

void WorkerPipeline::NoteAnswer(const Pending& pending, const arrow::RecordBatch& result,
                                int64_t result_bytes) {
  const auto arrived = executions_[pending.worker]->last_reply_arrival();
  const auto held_since = std::max(pending.sent, last_answers_[pending.worker]);
  last_answers_[pending.worker] = arrived;
  if (!pending.sampled) return;
  BatchSpan span;
  span.batch = pending.sequence;
  span.worker_index = pending.worker;
  span.worker = worker_metrics_[pending.worker].worker;
  span.rows_in = pending.rows_sent;
  span.rows_out = result.num_rows();
  span.bytes_in = pending.bytes;
  span.bytes_out = result_bytes;
  span.start_unix_nanos = UnixNanos(pending.sent);
  span.end_unix_nanos = UnixNanos(arrived);
  span.worker_nanos = std::max<int64_t>(0, UnixNanos(arrived) - UnixNanos(held_since));
  batch_spans_.push_back(std::move(span));
}

std::string WorkerPipeline::Where(const Pending& pending) const {
  return "on " + pending.what + " in " + workers_[pending.worker]->Describe();
}

arrow::Status WorkerPipeline::Fail(const arrow::Status& status, const std::string& where) {
  if (failure_.ok()) {
    failure_ = status.WithMessage(options_.label, where.empty() ? "" : " " + where,
                                  " failed: ", status.message());
  }
  Stop();
  return failure_;
}

void WorkerPipeline::Stop() {
  executions_.clear();  // aborts unfinished executions and joins their threads
  for (auto& worker : workers_) dispatcher_->Release(std::move(worker));
  workers_.clear();
  pending_.clear();
}

}  // namespace quiver::exec
