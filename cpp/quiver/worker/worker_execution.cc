#include "quiver/worker/worker_execution.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <arrow/array/data.h>
#include <arrow/ipc/writer.h>
#include <arrow/type.h>
#include <arrow/type_traits.h>
#include <arrow/util/byte_size.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/result_validation.h"

namespace quiver::worker {
namespace {

bool EndsExecution(const transport::WorkerReply& reply) {
  return reply.control &&
         (reply.control->has_finish_response() || reply.control->has_cancel_response());
}

// Returns whether `reply` answers a batch (its result or its error), not a heartbeat.
bool AnswersBatch(const transport::WorkerReply& reply) {
  return reply.batch != nullptr || (reply.control && reply.control->has_error());
}

// Returns `status` with a detail of `kind` naming `worker`.
arrow::Status Failed(const Worker& worker, UdfErrorKind kind, const arrow::Status& status) {
  return WithUdfError(status, worker.ErrorDetail(kind));
}

// Returns e.g. "2.31 GiB" or "512.00 KiB".
std::string FormatBytes(int64_t bytes) {
  static constexpr const char* kUnits[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.2f %s", value, kUnits[unit]);
  return text;
}

// Adds to `*bytes` and `*buffers` the buffers of `data`, its children and dictionary.
void CountBuffers(const arrow::ArrayData& data, int64_t* bytes, int64_t* buffers) {
  for (const auto& buffer : data.buffers) {
    if (buffer == nullptr) continue;
    *bytes += buffer->size();
    *buffers += 1;
  }
  for (const auto& child : data.child_data) CountBuffers(*child, bytes, buffers);
  if (data.dictionary != nullptr) CountBuffers(*data.dictionary, bytes, buffers);
}

// Returns at least the size of `batch` as an Arrow IPC stream, without building
// it: every buffer whole (the IPC writer sends a sliced column's part only),
// padded, plus generous room for the schema and message headers.
int64_t IpcSizeUpperBound(const arrow::RecordBatch& batch) {
  int64_t bytes = 0;
  int64_t buffers = 0;
  for (const auto& column : batch.column_data()) CountBuffers(*column, &bytes, &buffers);
  constexpr int64_t kHeaderRoom = 64 << 10;
  return bytes + 8 * buffers + kHeaderRoom + 1024 * (buffers + batch.num_columns());
}

// A batch sent while no answer is unread goes out without the receiving thread
// reading beside it only when its message is at most this large: well within a
// Unix socket's buffer (208 KiB by default), so that the send cannot wait for a
// worker that answers before it has read the whole batch.
constexpr int64_t kSentAloneBytes = 64 << 10;

// Returns the bytes the rows of `data` use in its buffers (a slice sends its
// part only) for the layouts a 1-row slice of a large batch mostly has: fixed
// width, and strings and binaries. -1 for any other: the caller asks Arrow,
// whose general answer builds arrays of byte ranges (microseconds a batch).
template <typename Offset>
int64_t VariableWidthRowBytes(const arrow::ArrayData& data) {
  const Offset* offsets = data.GetValues<Offset>(1);
  if (offsets == nullptr) return -1;
  return (data.length + 1) * static_cast<int64_t>(sizeof(Offset)) +
         static_cast<int64_t>(offsets[data.length] - offsets[0]);
}

int64_t RowBytes(const arrow::ArrayData& data) {
  if (data.dictionary != nullptr || !data.child_data.empty()) return -1;
  const int64_t validity = data.length / 8 + 1;
  int64_t values = -1;
  switch (data.type->id()) {
    case arrow::Type::STRING:
    case arrow::Type::BINARY:
      values = VariableWidthRowBytes<int32_t>(data);
      return values < 0 ? -1 : validity + values;
    case arrow::Type::LARGE_STRING:
    case arrow::Type::LARGE_BINARY:
      values = VariableWidthRowBytes<int64_t>(data);
      return values < 0 ? -1 : validity + values;
    default:
      break;
  }
  if (!arrow::is_fixed_width(data.type->id()) || data.buffers.size() != 2) return -1;
  const int bits = data.type->bit_width();
  return bits <= 0 ? -1 : validity + (data.length * bits + 7) / 8;
}

// Returns whether `batch` is sure to be at most kSentAloneBytes as a Data
// message: the bytes its columns reference, with room for the IPC headers of
// its buffers and fields and for the frame's own.
bool SmallEnoughToSendAlone(const arrow::RecordBatch& batch) {
  int64_t whole = 0;
  int64_t buffers = 0;
  for (const auto& column : batch.column_data()) CountBuffers(*column, &whole, &buffers);
  const int64_t headers = 4096 + 32 * buffers + 64 * batch.num_columns();
  if (whole + headers <= kSentAloneBytes) return true;
  int64_t used = headers;
  for (const auto& column : batch.column_data()) {
    int64_t bytes = RowBytes(*column);
    if (bytes < 0) {
      auto referenced = arrow::util::ReferencedBufferSize(*column);
      if (!referenced.ok()) return false;
      bytes = *referenced;
    }
    used += bytes;
    if (used > kSentAloneBytes) return false;
  }
  return true;
}

// Least time a worker gets to answer a Cancel, for replies already under way.
constexpr std::chrono::milliseconds kLastWordWait{100};

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

WorkerExecution::WorkerExecution(Worker* worker) : worker_(worker) {}

WorkerExecution::~WorkerExecution() {
  if (!done_) Abort();
  StopReceiving();
}

arrow::Status CheckErrorColumns(const arrow::Schema& schema, const std::vector<std::string>& udfs) {
  size_t next_udf = 0;
  for (int i = static_cast<int>(udfs.size()); i < schema.num_fields(); ++i) {
    const auto& field = *schema.field(i);
    while (next_udf < udfs.size() && field.name() != udfs[next_udf] + "__error") ++next_udf;
    if (next_udf == udfs.size() || field.type()->id() != arrow::Type::STRING) {
      return arrow::Status::Invalid(
          "a result schema whose field ", i, " (", field.ToString(), ") comes after the ",
          udfs.size(),
          " UDFs' fields but is not the string column NAME__error of one of them "
          "(each at most once, in Init order)");
    }
    ++next_udf;
  }
  return arrow::Status::OK();
}

arrow::Result<std::unique_ptr<WorkerExecution>> WorkerExecution::Start(Worker* worker,
                                                                       const v1::Init& init) {
  std::unique_ptr<WorkerExecution> execution(new WorkerExecution(worker));
  worker->CountExecution();
  for (const auto& udf : init.udfs()) execution->udf_names_.push_back(udf.name());
  const std::vector<std::string>& names = execution->udf_names_;
  // With --log-dir, the worker's lines from here on name these UDFs.
  if (!worker->remote()) execution->log_sink_ = worker->process().log().sink();
  if (execution->log_sink_ != nullptr) execution->log_sink_->SetUdfs(names);
  execution->activity_ = std::make_unique<WorkerActivity>(worker->Describe(), worker->pid(), names);
  execution->cpu_at_start_ = ProcessCpuNanos(worker->pid());
  std::vector<v1::EngineMessage> messages = SplitLargePayloads(init);
  for (const v1::EngineMessage& message : messages) {
    if (!worker->connection().SendControl(message, execution->BatchDeadline()).ok()) {
      return execution->Broken("while sending Init");
    }
  }
  execution->udf_count_ = init.udfs_size();
  // Grouped and table kinds (eval types 10-19) answer with schemas and row
  // counts of their own (docs/protocol.md, section 9); their callers check them.
  for (const auto& udf : init.udfs()) {
    if (udf.eval_type() >= 10 && udf.eval_type() < 20) execution->udf_count_ = -1;
  }
  execution->caller_may_read_ = worker->connection().ReceiveKeepsDeadline();
  execution->receiver_reads_ = !execution->caller_may_read_;
  execution->receiver_ = std::thread([raw = execution.get()] {
    // Named so that `top -H` and bench/scaling.py can tell result decoding and checks apart.
    pthread_setname_np(pthread_self(), "quiver-receive");
    raw->ReceiveLoop();
  });
  return execution;
}

arrow::Status WorkerExecution::WaitUntilReady() {
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
  if (!schema.ok()) {
    worker_->MarkBroken();
    return Failed(
        *worker_, UdfErrorKind::kProtocolViolation,
        arrow::Status::IOError(worker_->Describe(),
                               " answered Init with a result schema that does not parse (",
                               schema.status().message(), "): protocol violation"));
  }
  if (udf_count_ >= 0 && (*schema)->num_fields() < udf_count_) {
    Abort();
    return Failed(
        *worker_, UdfErrorKind::kProtocolViolation,
        arrow::Status::IOError(worker_->Describe(), " answered Init with a result schema of ",
                               (*schema)->num_fields(), " fields for ", udf_count_, " UDFs"));
  }
  if (udf_count_ >= 0) {
    arrow::Status extra = CheckErrorColumns(**schema, udf_names_);
    if (!extra.ok()) {
      Abort();
      return Failed(*worker_, UdfErrorKind::kProtocolViolation,
                    arrow::Status::IOError(worker_->Describe(), " answered Init with ",
                                           extra.message(), ": protocol violation"));
    }
  }
  result_schema_ = *schema;
  return arrow::Status::OK();
}

io::Deadline WorkerExecution::BatchDeadline() const {
  return io::DeadlineIn(worker_->spec().batch_timeout);
}

io::Deadline WorkerExecution::AnswerDeadline() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (unanswered_ == 0) return BatchDeadline();
  return owed_since_ + worker_->spec().batch_timeout;
}

void WorkerExecution::ReceiveLoop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      receiver_turn_.wait(lock, [&] { return (receiver_reads_ && !caller_reading_) || stopping_; });
      if (!receiver_reads_ || caller_reading_) return;  // stopping while resting
    }
    Received received = ReadReply(io::kNoDeadline);
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      BookLocked(received);
      last = ended_;
      // Every answer sent for is read: rest, and let the caller's thread read
      // the next one when it waits for it.
      if (caller_may_read_ && unread_ == 0) receiver_reads_ = false;
      replies_.push_back(std::move(received));
    }
    reply_arrived_.notify_all();
    if (last) return;
  }
}

WorkerExecution::Received WorkerExecution::ReadReply(io::Deadline deadline) {
  auto reply = worker_->connection().Receive(deadline);
  Received received{std::move(reply), arrow::Status::OK(), std::chrono::system_clock::now()};
  if (received.reply.ok() && AnswersBatch(*received.reply)) NoteAnswer();
  // Nothing may read a result's values before this check: bad offsets or
  // UTF-8 would crash or corrupt whatever reads them next. On the receiving
  // thread it overlaps the caller's sending of the next batches.
  if (received.reply.ok() && received.reply->batch != nullptr) {
    received.validity = protocol::ValidateResultBatch(*received.reply->batch);
  }
  return received;
}

void WorkerExecution::BookLocked(const Received& received) {
  owed_since_ = std::chrono::steady_clock::now();  // the worker answered: it owes the next
  if (!received.reply.ok() || EndsExecution(*received.reply)) {
    ended_ = true;
    receiver_reads_ = false;
  } else if (AnswersBatch(*received.reply) && unread_ > 0) {
    --unread_;
  }
}

bool WorkerExecution::CallerMayReadLocked() const {
  return caller_may_read_ && !receiver_reads_ && !caller_reading_ && !ended_;
}

bool WorkerExecution::WakeReceiverLocked() {
  if (receiver_reads_ || ended_) return false;
  receiver_reads_ = true;
  return true;
}

// First thing once an answer came, before the worker has much time to write
// about its next batch.
void WorkerExecution::NoteAnswer() {
  activity_->BatchAnswered();
  if (log_sink_ == nullptr) return;
  // What the worker wrote before it answered belongs to the batch answered.
  worker_->process().CatchUpOutput();
  log_sink_->BatchAnswered();
}

void WorkerExecution::StopReceiving() {
  if (!receiver_.joinable()) return;
  bool ended = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ended = ended_;
    stopping_ = true;
  }
  receiver_turn_.notify_all();
  // A receiver still reading is woken by closing the connection; such a worker
  // cannot be reused, since the protocol state is unknown.
  if (!ended) {
    worker_->MarkBroken();
    worker_->connection().Shutdown();
  }
  receiver_.join();
}

arrow::Result<transport::WorkerReply> WorkerExecution::NextReply(io::Deadline deadline,
                                                                 const std::string& what,
                                                                 arrow::Status* validity) {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto ready = [&] { return !replies_.empty() || CallerMayReadLocked(); };
  if (!reply_arrived_.wait_until(lock, deadline, ready)) {
    lock.unlock();
    return TimedOut(what);
  }
  Received received;
  if (!replies_.empty()) {
    received = std::move(replies_.front());
    replies_.pop_front();
    lock.unlock();
  } else {
    // The receiving thread rests: this thread reads, and keeps the deadline.
    caller_reading_ = true;
    lock.unlock();
    received = ReadReply(deadline);
    lock.lock();
    caller_reading_ = false;
    const bool timed_out = !received.reply.ok() && std::chrono::steady_clock::now() >= deadline;
    BookLocked(received);  // a timeout too ends the reading: a frame may be cut
    // A Send on another thread may have handed the reading over meanwhile; the
    // receiving thread is woken only then (a wake-up is a system call).
    const bool handed_over = receiver_reads_;
    lock.unlock();
    if (handed_over) receiver_turn_.notify_all();
    if (timed_out) return TimedOut(what);
  }
  last_arrival_ = received.arrived;
  if (!received.reply.ok()) return Lost(received.reply.status());
  if (validity != nullptr) *validity = std::move(received.validity);
  return std::move(received.reply);
}

arrow::Status WorkerExecution::TimedOut(const std::string& what) {
  worker_->MarkBroken();
  return Failed(*worker_, UdfErrorKind::kTimeout,
                arrow::Status::IOError(worker_->Describe(), " did not answer ", what, " within ",
                                       Seconds(worker_->spec().batch_timeout),
                                       " (the per-batch timeout) and was stopped; a UDF may hang"));
}

arrow::Status WorkerExecution::Broken(const std::string& what) {
  worker_->MarkBroken();
  WorkerFailure failure = worker_->ExamineFailure();
  return WithUdfError(
      arrow::Status::IOError(worker_->Describe(), " failed ", what, ": ", failure.text),
      std::move(failure.detail));
}

arrow::Status WorkerExecution::Lost(const arrow::Status& transport_error) {
  worker_->MarkBroken();
  // A transport that checks a protocol of its own (spark) says what the worker broke.
  const UdfErrorDetail* detail = UdfErrorDetailOf(transport_error);
  if (detail != nullptr && detail->kind == UdfErrorKind::kProtocolViolation) {
    return Failed(*worker_, UdfErrorKind::kProtocolViolation,
                  arrow::Status::IOError(worker_->Describe(), " ", transport_error.message(),
                                         " (protocol violation; the worker was stopped)"));
  }
  // A message over the size limit: the worker is alive, its result too large to take.
  if (detail != nullptr && detail->kind == UdfErrorKind::kBatchTooLarge) {
    return Failed(*worker_, UdfErrorKind::kBatchTooLarge,
                  arrow::Status::IOError(worker_->Describe(), " sent a result too large to take: ",
                                         transport_error.message(),
                                         " (--batch-rows, --batch-bytes); the worker was stopped"));
  }
  WorkerFailure failure = worker_->ExamineFailure();
  return WithUdfError(arrow::Status::IOError(failure.text, "\n(", transport_error.message(), ")"),
                      std::move(failure.detail));
}

arrow::Status WorkerExecution::Send(uint64_t sequence, const arrow::RecordBatch& arguments) {
  // Refused before anything goes out: the worker would drop the connection on
  // a message over its limit, and over some transports the engine would first
  // buffer all of it. Nothing was sent, so the worker stays usable.
  const int64_t limit = worker_->spec().max_message_bytes;
  int64_t size = 0;
  // The exact size costs a serialization pass; only batches near the limit pay it.
  if (IpcSizeUpperBound(arguments) > limit) {
    ARROW_RETURN_NOT_OK(arrow::ipc::GetRecordBatchSize(arguments, &size));
  }
  if (size > limit) {
    return WithUdfError(
        arrow::Status::Invalid("batch ", sequence, " of ", arguments.num_rows(), " rows is ",
                               FormatBytes(size), " (", size,
                               " bytes) in Arrow IPC form, over the limit of ", FormatBytes(limit),
                               " (", limit, " bytes) for one message to ", worker_->Describe(),
                               "; use smaller batches (e.g. --batch-rows)"),
        worker_->ErrorDetail(UdfErrorKind::kBatchTooLarge));
  }
  const bool alone = caller_may_read_ && SmallEnoughToSendAlone(arguments);
  bool woke = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (unanswered_++ == 0) owed_since_ = std::chrono::steady_clock::now();
    // A second answer now due, or a batch the worker might answer before it has
    // read it all: the receiving thread reads beside the sending.
    if (unread_++ > 0 || !alone) woke = WakeReceiverLocked();
  }
  if (woke) receiver_turn_.notify_all();
  activity_->BatchSent(sequence);
  if (log_sink_ != nullptr) log_sink_->BatchSent(sequence);
  arrow::Status status = worker_->connection().SendBatch(sequence, arguments, BatchDeadline());
  if (status.ok()) return status;
  // A send fails because the worker went away; the receiver saw why.
  return Lost(status);
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> WorkerExecution::Receive(uint64_t sequence,
                                                                            int64_t rows) {
  while (true) {
    arrow::Status validity;
    ARROW_ASSIGN_OR_RAISE(
        auto reply, NextReply(BatchDeadline(), "batch " + std::to_string(sequence), &validity));
    if (reply.control && reply.control->has_heartbeat()) continue;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --unanswered_;
    }
    if (reply.control && reply.control->has_error()) return ErrorFromWorker(reply.control->error());
    ARROW_RETURN_NOT_OK(CheckResult(reply, validity, sequence, rows));
    return reply.batch;
  }
}

arrow::Status WorkerExecution::CheckResult(const transport::WorkerReply& reply,
                                           const arrow::Status& validity, uint64_t sequence,
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
  if (rows >= 0 && reply.batch->num_rows() != rows) {
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
  // The receiving thread validated the batch in full (ReceiveLoop).
  const arrow::Status& valid = validity;
  if (!valid.ok()) {
    worker_->MarkBroken();
    return Failed(
        *worker_, UdfErrorKind::kProtocolViolation,
        arrow::Status::IOError(worker_->Describe(), " returned an invalid result for batch ",
                               sequence, ": ", valid.message(),
                               " (the worker was stopped; a UDF that builds arrays from raw "
                               "buffers may have produced them)"));
  }
  return arrow::Status::OK();
}

arrow::Status WorkerExecution::ErrorFromWorker(const v1::Error& error) {
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

int64_t WorkerExecution::CpuNanos() const {
  if (cpu_at_start_ < 0) return -1;
  const int64_t now = ProcessCpuNanos(worker_->pid());
  return now < 0 ? -1 : now - cpu_at_start_;
}

arrow::Result<v1::Metrics> WorkerExecution::Finish() {
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

void WorkerExecution::Abort() {
  if (done_) return;
  done_ = true;
  if (worker_->broken()) return;
  // A Cancel does not extend the time the worker has for the batch it works on:
  // a worker that hangs on it is given up when its answer was due, so that the
  // N hung workers of one failed run are all given up within one batch timeout.
  const io::Deadline deadline =
      std::min(BatchDeadline(), std::max(AnswerDeadline(), io::DeadlineIn(kLastWordWait)));
  v1::EngineMessage message;
  message.mutable_cancel()->set_reason("the engine stopped the run");
  if (!worker_->connection().SendControl(message, deadline).ok()) {
    worker_->MarkBroken();
    return;
  }
  // Results and errors already under way are dropped until the CancelResponse.
  while (true) {
    auto reply = NextReply(deadline, "Cancel");
    if (!reply.ok()) return;  // NextReply marked the worker broken
    if (reply->control && reply->control->has_cancel_response()) return;
  }
}

}  // namespace quiver::worker
