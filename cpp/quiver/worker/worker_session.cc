#include "quiver/worker/worker_session.h"

#include <string>
#include <utility>
#include <vector>

#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"

namespace quiver::worker {
namespace {

bool EndsExecution(const transport::WorkerReply& reply) {
  return reply.control &&
         (reply.control->has_finish_response() || reply.control->has_cancel_response());
}

// Returns `status` with a detail of `kind` naming `worker`.
arrow::Status Failed(const Worker& worker, UdfErrorKind kind, const arrow::Status& status) {
  return WithUdfError(status, worker.ErrorDetail(kind));
}

std::string Seconds(std::chrono::milliseconds timeout) {
  return std::to_string(timeout.count() / 1000.0).substr(0, 5) + " s";
}

}  // namespace

std::vector<v1::EngineMessage> SplitLargePayloads(const v1::Init& init, size_t chunk_bytes) {
  std::vector<v1::EngineMessage> messages(1);
  v1::Init* head = messages.front().mutable_init();
  *head = init;
  for (int index = 0; index < head->udfs_size(); ++index) {
    std::string* payload = head->mutable_udfs(index)->mutable_payload();
    if (payload->size() <= chunk_bytes) continue;
    // The first chunk stays in Init; the rest follow in order.
    for (size_t offset = chunk_bytes; offset < payload->size(); offset += chunk_bytes) {
      v1::PayloadChunk* chunk = messages.emplace_back().mutable_payload_chunk();
      chunk->set_udf_index(static_cast<uint32_t>(index));
      chunk->set_data(payload->substr(offset, chunk_bytes));
    }
    payload->resize(chunk_bytes);
  }
  head = messages.front().mutable_init();  // emplace_back may have moved it
  head->set_payload_chunk_count(static_cast<uint32_t>(messages.size() - 1));
  return messages;
}

WorkerSession::WorkerSession(Worker* worker) : worker_(worker) {}

WorkerSession::~WorkerSession() {
  if (!done_) Abort();
  StopReceiving();
}

arrow::Result<std::unique_ptr<WorkerSession>> WorkerSession::Start(Worker* worker,
                                                                   const v1::Init& init) {
  std::unique_ptr<WorkerSession> session(new WorkerSession(worker));
  worker->CountExecution();
  std::vector<v1::EngineMessage> messages = SplitLargePayloads(init);
  for (const v1::EngineMessage& message : messages) {
    if (!worker->connection().SendControl(message, session->BatchDeadline()).ok()) {
      return session->Broken("while sending Init");
    }
  }
  session->udf_count_ = init.udfs_size();
  session->receiver_ = std::thread([raw = session.get()] { raw->ReceiveLoop(); });
  return session;
}

arrow::Status WorkerSession::WaitUntilReady() {
  ARROW_ASSIGN_OR_RAISE(auto reply, NextReply(BatchDeadline(), "Init"));
  if (reply.control && reply.control->has_error()) {
    arrow::Status error = ErrorFromWorker(reply.control->error());
    Abort();
    return error;
  }
  if (!reply.control || !reply.control->has_init_response()) {
    return Broken("answered Init with something other than InitResponse");
  }
  auto schema = protocol::DeserializeSchema(reply.control->init_response().result_schema());
  if (!schema.ok() || (*schema)->num_fields() != udf_count_) {
    Abort();
    return Failed(
        *worker_, UdfErrorKind::kProtocolViolation,
        arrow::Status::IOError(worker_->Describe(), " answered Init with a result schema of ",
                               schema.ok() ? (*schema)->num_fields() : -1, " fields for ",
                               udf_count_, " UDFs"));
  }
  result_schema_ = *schema;
  return arrow::Status::OK();
}

io::Deadline WorkerSession::BatchDeadline() const {
  return io::DeadlineIn(worker_->spec().batch_timeout);
}

void WorkerSession::ReceiveLoop() {
  while (true) {
    auto reply = worker_->connection().Receive(io::kNoDeadline);
    const bool last = !reply.ok() || EndsExecution(*reply);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      replies_.push_back(std::move(reply));
      receiver_done_ = last;
    }
    reply_arrived_.notify_all();
    if (last) return;
  }
}

void WorkerSession::StopReceiving() {
  if (!receiver_.joinable()) return;
  bool ended = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ended = receiver_done_;
  }
  // A receiver still reading is woken by closing the connection; such a worker
  // cannot be reused, since the protocol state is unknown.
  if (!ended) {
    worker_->MarkBroken();
    worker_->connection().Shutdown();
  }
  receiver_.join();
}

arrow::Result<transport::WorkerReply> WorkerSession::NextReply(io::Deadline deadline,
                                                               const std::string& what) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!reply_arrived_.wait_until(lock, deadline, [&] { return !replies_.empty(); })) {
    lock.unlock();
    worker_->MarkBroken();
    return Failed(
        *worker_, UdfErrorKind::kTimeout,
        arrow::Status::IOError(worker_->Describe(), " did not answer ", what, " within ",
                               Seconds(worker_->spec().batch_timeout),
                               " (the per-batch timeout) and was stopped; a UDF may hang"));
  }
  auto reply = std::move(replies_.front());
  replies_.pop_front();
  lock.unlock();
  if (!reply.ok()) return Lost(reply.status());
  return reply;
}

arrow::Status WorkerSession::Broken(const std::string& what) {
  worker_->MarkBroken();
  WorkerFailure failure = worker_->ExamineFailure();
  return WithUdfError(
      arrow::Status::IOError(worker_->Describe(), " failed ", what, ": ", failure.text),
      std::move(failure.detail));
}

arrow::Status WorkerSession::Lost(const arrow::Status& transport_error) {
  worker_->MarkBroken();
  WorkerFailure failure = worker_->ExamineFailure();
  return WithUdfError(arrow::Status::IOError(failure.text, "\n(", transport_error.message(), ")"),
                      std::move(failure.detail));
}

arrow::Status WorkerSession::Send(uint64_t sequence, const arrow::RecordBatch& arguments) {
  arrow::Status status = worker_->connection().SendBatch(sequence, arguments, BatchDeadline());
  if (status.ok()) return status;
  // A send fails because the worker went away; the receiver saw why.
  return Lost(status);
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> WorkerSession::Receive(uint64_t sequence,
                                                                          int64_t rows) {
  while (true) {
    ARROW_ASSIGN_OR_RAISE(auto reply,
                          NextReply(BatchDeadline(), "batch " + std::to_string(sequence)));
    if (reply.control && reply.control->has_heartbeat()) continue;
    if (reply.control && reply.control->has_error()) return ErrorFromWorker(reply.control->error());
    ARROW_RETURN_NOT_OK(CheckResult(reply, sequence, rows));
    return reply.batch;
  }
}

arrow::Status WorkerSession::CheckResult(const transport::WorkerReply& reply, uint64_t sequence,
                                         int64_t rows) {
  if (!reply.batch) {
    worker_->MarkBroken();
    return Failed(
        *worker_, UdfErrorKind::kProtocolViolation,
        arrow::Status::IOError(worker_->Describe(), " sent ", reply.control->GetTypeName(), " ",
                               reply.control->ShortDebugString(), " where the result of batch ",
                               sequence, " was due (protocol violation)"));
  }
  if (reply.sequence != sequence) {
    worker_->MarkBroken();
    return Failed(*worker_, UdfErrorKind::kProtocolViolation,
                  arrow::Status::IOError(worker_->Describe(), " answered batch ", reply.sequence,
                                         " when the answer to batch ", sequence,
                                         " was due (protocol violation)"));
  }
  if (reply.batch->num_rows() != rows) {
    return Failed(*worker_, UdfErrorKind::kWrongRowCount,
                  arrow::Status::Invalid(worker_->Describe(), " returned ", reply.batch->num_rows(),
                                         " rows for batch ", sequence, " of ", rows,
                                         " rows: a UDF returned the wrong number of rows"));
  }
  if (!reply.batch->schema()->Equals(*result_schema_, /*check_metadata=*/false)) {
    return Failed(
        *worker_, UdfErrorKind::kWrongResultSchema,
        arrow::Status::Invalid(worker_->Describe(), " returned columns ",
                               reply.batch->schema()->ToString(), " for batch ", sequence,
                               " where its InitResponse promised ", result_schema_->ToString()));
  }
  return arrow::Status::OK();
}

arrow::Status WorkerSession::ErrorFromWorker(const v1::Error& error) {
  if (error.has_user_error()) {
    const auto& user = error.user_error();
    std::string text =
        "UDF '" + user.udf_name() + "' raised " + user.error_class() + ": " + user.message();
    if (!user.traceback().empty()) text += "\n" + user.traceback();
    UdfErrorDetail detail = worker_->ErrorDetail(UdfErrorKind::kUserError);
    detail.udf_name = user.udf_name();
    detail.error_class = user.error_class();
    detail.traceback = user.traceback();
    return WithUdfError(arrow::Status::Invalid(text), std::move(detail));
  }
  if (error.has_worker_error()) {
    const auto& failure = error.worker_error();
    const std::string who = failure.udf_name().empty() ? "" : "UDF '" + failure.udf_name() + "': ";
    UdfErrorDetail detail = worker_->ErrorDetail(UdfErrorKind::kWorkerError);
    detail.udf_name = failure.udf_name();
    return WithUdfError(arrow::Status::Invalid(who, failure.message()), std::move(detail));
  }
  worker_->MarkBroken();
  return Failed(*worker_, UdfErrorKind::kProtocolViolation,
                arrow::Status::IOError(worker_->Describe(), " reported a protocol error: ",
                                       error.protocol_error().message()));
}

arrow::Result<v1::Metrics> WorkerSession::Finish() {
  v1::EngineMessage message;
  message.mutable_finish();
  if (!worker_->connection().SendControl(message, BatchDeadline()).ok()) {
    done_ = true;
    return Broken("while sending Finish");
  }
  while (true) {
    auto reply = NextReply(BatchDeadline(), "Finish");
    if (!reply.ok()) {
      done_ = true;
      return reply.status();
    }
    if (reply->control && reply->control->has_heartbeat()) continue;
    done_ = true;
    if (reply->control && reply->control->has_finish_response()) {
      return reply->control->finish_response().metrics();
    }
    if (reply->control && reply->control->has_error()) {
      arrow::Status error = ErrorFromWorker(reply->control->error());
      worker_->MarkBroken();  // it answered Finish with an Error: state unknown
      return error;
    }
    worker_->MarkBroken();
    return Failed(*worker_, UdfErrorKind::kProtocolViolation,
                  arrow::Status::IOError(worker_->Describe(),
                                         " sent a result after all batches were answered"));
  }
}

void WorkerSession::Abort() {
  if (done_) return;
  done_ = true;
  if (worker_->broken()) return;
  v1::EngineMessage message;
  message.mutable_cancel()->set_reason("the engine stopped the run");
  if (!worker_->connection().SendControl(message, BatchDeadline()).ok()) {
    worker_->MarkBroken();
    return;
  }
  // Results and errors already under way are dropped until the CancelResponse.
  while (true) {
    auto reply = NextReply(BatchDeadline(), "Cancel");
    if (!reply.ok()) return;  // NextReply marked the worker broken
    if (reply->control && reply->control->has_cancel_response()) return;
  }
}

}  // namespace quiver::worker
