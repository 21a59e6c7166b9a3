#include "quiver/transport/spark/spark_connection.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/type.h>

#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/udf_error.h"
#include "quiver/transport/spark/spark_client.h"
#include "quiver/transport/spark/spark_data.h"
#include "quiver/transport/spark/spark_init.h"
#include "quiver/transport/spark/spark_replies.h"
#include "quiver/transport/spark/write_watchdog.h"

namespace quiver::transport::spark {
namespace {

// Time a Manage call outside an execution may take (heartbeat, shutdown).
constexpr std::chrono::milliseconds kManageTimeout{10000};

// One UDF's Execute stream.
struct UdfStream {
  std::string name;
  std::vector<int> argument_offsets;
  std::unique_ptr<ExecuteCall> call;
  // The receiving thread's view of the stream.
  std::shared_ptr<arrow::Field> result;  // from InitResponse.data
  bool terminated = false;               // FinishResponse or CancelResponse arrived
  bool finished = false;                 // ... and it was FinishResponse
  SparkMetrics metrics;
  // Set under the execution's mutex: the engine side sent Cancel on it.
  bool cancel_sent = false;
};

// A batch sent and not answered yet.
struct PendingBatch {
  uint64_t sequence;
  int64_t rows;
};

// One quiver execution: N streams.
struct Execution {
  std::vector<UdfStream> streams;
  // Shared by the sending and the receiving thread.
  std::mutex mutex;
  std::condition_variable sent;  // a batch, Finish or Cancel went out
  std::deque<PendingBatch> pending;
  bool finish_sent = false;
  bool cancel_sent = false;
  // The receiving thread's own.
  bool ready = false;     // every InitResponse arrived
  bool draining = false;  // failed or cancelled: read to the terminators
  bool broken = false;    // a violation was found; the calls are cancelled
  // The violation, for the sending thread, whose writes fail once the calls are cancelled.
  arrow::Status violation;  // guarded by `mutex`
  std::string local_error;  // set when the Init could not be translated
};

std::vector<SparkMetrics> StreamMetrics(const Execution& execution) {
  std::vector<SparkMetrics> metrics;
  for (const UdfStream& stream : execution.streams) metrics.push_back(stream.metrics);
  return metrics;
}

WorkerReply ControlReply(v1::WorkerMessage message) {
  WorkerReply reply;
  reply.control = std::move(message);
  return reply;
}

class SparkConnection : public Connection {
 public:
  explicit SparkConnection(std::string connection)
      : connection_(std::move(connection)),
        endpoint_("spark:" + connection_),
        channel_(MakeSparkChannel(SparkAddress(connection_))),
        watchdog_([this] { CancelCalls(); }) {}

  ~SparkConnection() override {
    Shutdown();
    std::lock_guard<std::mutex> lock(mutex_);
    execution_.reset();
  }

  arrow::Status SendControl(const v1::EngineMessage& message, io::Deadline deadline) override {
    switch (message.kind_case()) {
      case v1::EngineMessage::kInit:
        return StartExecution(message.init(), deadline);
      case v1::EngineMessage::kPayloadChunk:
        return AddPayloadChunk(message.payload_chunk(), deadline);
      case v1::EngineMessage::kFinish:
        return EndExecution(/*cancel=*/false, deadline);
      case v1::EngineMessage::kCancel:
        return EndExecution(/*cancel=*/true, deadline);
      case v1::EngineMessage::kHeartbeat:
      case v1::EngineMessage::kShutdown:
        return Manage(message);
      default:
        return arrow::Status::NotImplemented("Spark's dialect has no counterpart of quiver.v1's ",
                                             message.GetTypeName(), " message");
    }
  }

  arrow::Status SendBatch(uint64_t sequence, const arrow::RecordBatch& batch,
                          io::Deadline deadline) override {
    std::shared_ptr<Execution> execution = Current();
    if (execution == nullptr || !execution->local_error.empty()) {
      return arrow::Status::IOError("no execution is running on ", endpoint_);
    }
    {
      std::lock_guard<std::mutex> lock(execution->mutex);
      execution->pending.push_back({sequence, batch.num_rows()});
    }
    execution->sent.notify_all();
    for (UdfStream& stream : execution->streams) {
      ARROW_ASSIGN_OR_RAISE(auto arguments, batch.SelectColumns(stream.argument_offsets));
      ARROW_ASSIGN_OR_RAISE(grpc::ByteBuffer bytes, EncodeDataRequest(*arguments));
      ARROW_RETURN_NOT_OK(Write(*execution, stream, bytes, deadline));
    }
    return arrow::Status::OK();
  }

  arrow::Result<WorkerReply> Receive(io::Deadline) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!local_replies_.empty()) {
        WorkerReply reply = std::move(local_replies_.front());
        local_replies_.pop_front();
        return reply;
      }
    }
    std::shared_ptr<Execution> execution = Current();
    if (execution == nullptr)
      return arrow::Status::IOError("no execution is running on ", endpoint_);
    if (execution->broken) {
      return arrow::Status::IOError("the connection to ", endpoint_,
                                    " was closed after a protocol violation");
    }
    if (!execution->local_error.empty()) return ReceiveRefused(execution);
    if (!WaitForWork(*execution)) {
      return arrow::Status::IOError("the connection to ", endpoint_, " is closed");
    }
    if (execution->draining) return Drain(execution);
    if (!execution->ready) return ReceiveInit(*execution);
    std::optional<PendingBatch> next;
    {
      std::lock_guard<std::mutex> lock(execution->mutex);
      if (!execution->pending.empty()) next = execution->pending.front();
    }
    if (next) return ReceiveBatch(*execution, *next);
    return ReceiveTerminators(execution);
  }

  void Shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      shut_down_ = true;
    }
    std::shared_ptr<Execution> execution = Current();
    if (execution != nullptr) {
      {
        // Taken so that a receiver between its check and its wait sees the flag.
        std::lock_guard<std::mutex> lock(execution->mutex);
      }
      execution->sent.notify_all();
      for (UdfStream& stream : execution->streams) stream.call->Cancel();
    }
  }

  // A Spark worker serves until told to stop: ShutdownRequest is that request.
  void Close(io::Deadline deadline) override {
    if (Current() == nullptr) {
      proto::WorkerRequest request;
      request.mutable_shutdown()->set_reason("the engine is done with the worker");
      const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (timeout.count() > 0) {
        (void)CallSparkManage(channel_.get(), request, timeout, /*wait_for_ready=*/false);
      }
    }
    Shutdown();
  }

  std::string endpoint() const override { return endpoint_; }

 private:
  std::shared_ptr<Execution> Current() {
    std::lock_guard<std::mutex> lock(mutex_);
    return execution_;
  }

  void Retire(const std::shared_ptr<Execution>& execution) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (execution_ == execution) execution_.reset();
  }

  void CancelCalls() {
    std::shared_ptr<Execution> execution = Current();
    if (execution == nullptr) return;
    for (UdfStream& stream : execution->streams) stream.call->Cancel();
  }

  // Writes `bytes` on `stream`, giving up (and cancelling the calls) at `deadline`.
  // A write that fails after the receiving side found a violation returns it.
  arrow::Status Write(Execution& execution, UdfStream& stream, const grpc::ByteBuffer& bytes,
                      io::Deadline deadline) {
    const uint64_t token = watchdog_.Arm(deadline);
    const bool written = stream.call->Write(bytes);
    watchdog_.Disarm(token);
    if (!written) {
      std::lock_guard<std::mutex> lock(execution.mutex);
      if (!execution.violation.ok()) return execution.violation;
      return arrow::Status::IOError("the worker at ", endpoint_,
                                    " stopped reading the stream of UDF '", stream.name,
                                    "' (the call was closed or timed out)");
    }
    return arrow::Status::OK();
  }

  arrow::Status StartExecution(const v1::Init& init, io::Deadline deadline) {
    if (Current() != nullptr) {
      return arrow::Status::Invalid("an execution is already running on ", endpoint_);
    }
    if (init.payload_chunk_count() > 0) {
      // The UDFs' payloads are whole only after quiver's PayloadChunks.
      waiting_init_ = init;
      return arrow::Status::OK();
    }
    return OpenStreams(init, deadline);
  }

  arrow::Status AddPayloadChunk(const v1::PayloadChunk& chunk, io::Deadline deadline) {
    if (!waiting_init_ || chunk.udf_index() >= static_cast<uint32_t>(waiting_init_->udfs_size())) {
      return arrow::Status::Invalid("a PayloadChunk outside an Init's payloads");
    }
    waiting_init_->mutable_udfs(static_cast<int>(chunk.udf_index()))
        ->mutable_payload()
        ->append(chunk.data());
    waiting_init_->set_payload_chunk_count(waiting_init_->payload_chunk_count() - 1);
    if (waiting_init_->payload_chunk_count() > 0) return arrow::Status::OK();
    v1::Init init = std::move(*waiting_init_);
    waiting_init_.reset();
    return OpenStreams(init, deadline);
  }

  arrow::Status OpenStreams(const v1::Init& init, io::Deadline deadline) {
    auto execution = std::make_shared<Execution>();
    auto starts = TranslateInit(init);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (shut_down_) return arrow::Status::IOError("the connection to ", endpoint_, " is closed");
      execution_ = execution;
    }
    if (!starts.ok()) {
      // Reported as the worker's refusal of the Init, so that the engine's
      // message carries the reason.
      execution->local_error = starts.status().message();
      return arrow::Status::OK();
    }
    execution->streams.resize(starts->size());
    for (size_t i = 0; i < starts->size(); ++i) {
      UdfStream& stream = execution->streams[i];
      stream.name = (*starts)[i].name;
      stream.argument_offsets = std::move((*starts)[i].argument_offsets);
      stream.call = std::make_unique<ExecuteCall>(channel_.get());
    }
    // Every stream's opening goes out before any answer is read: the worker
    // loads the UDFs at once.
    for (size_t i = 0; i < starts->size(); ++i) {
      for (const proto::UdfRequest& request : (*starts)[i].messages) {
        ARROW_RETURN_NOT_OK(
            Write(*execution, execution->streams[i], SerializeRequest(request), deadline));
      }
    }
    return arrow::Status::OK();
  }

  arrow::Status EndExecution(bool cancel, io::Deadline deadline) {
    std::shared_ptr<Execution> execution = Current();
    if (execution == nullptr) {
      // The execution failed and ended on the receiving side already (its
      // streams were cancelled when the error came): nothing is left to end.
      return cancel ? arrow::Status::OK()
                    : arrow::Status::IOError("no execution is running on ", endpoint_);
    }
    std::vector<UdfStream*> targets;
    {
      std::lock_guard<std::mutex> lock(execution->mutex);
      (cancel ? execution->cancel_sent : execution->finish_sent) = true;
      for (UdfStream& stream : execution->streams) {
        if (stream.cancel_sent) continue;
        if (cancel) stream.cancel_sent = true;
        targets.push_back(&stream);
      }
    }
    execution->sent.notify_all();
    if (!execution->local_error.empty()) return arrow::Status::OK();
    proto::UdfRequest request;
    if (cancel) {
      request.mutable_control()->mutable_cancel()->set_reason("the engine stopped the run");
    } else {
      request.mutable_control()->mutable_finish();
    }
    const grpc::ByteBuffer bytes = SerializeRequest(request);
    for (UdfStream* stream : targets) {
      arrow::Status written = Write(*execution, *stream, bytes, deadline);
      // A Cancel to a stream that already ended is moot, and a Finish to a worker
      // found breaking the protocol: the receiving side reports how it ended.
      if (!written.ok() && !cancel && UdfErrorDetailOf(written) == nullptr) return written;
    }
    return arrow::Status::OK();
  }

  arrow::Status Manage(const v1::EngineMessage& message) {
    proto::WorkerRequest request;
    if (message.has_heartbeat()) {
      request.mutable_heartbeat();
    } else {
      request.mutable_shutdown()->set_cancel_sessions(message.shutdown().cancel_running());
    }
    ManageReply answer = CallSparkManage(channel_.get(), request, kManageTimeout);
    if (answer.code != grpc::StatusCode::OK) {
      return arrow::Status::IOError("Manage call to the worker at ", endpoint_,
                                    " failed: gRPC status ", static_cast<int>(answer.code), " ",
                                    answer.message);
    }
    v1::WorkerMessage reply;
    if (message.has_heartbeat() && answer.response.has_heartbeat()) {
      reply.mutable_heartbeat()->set_nonce(message.heartbeat().nonce());
    } else if (message.has_shutdown() && answer.response.has_shutdown()) {
      reply.mutable_shutdown()->set_cancel_running(message.shutdown().cancel_running());
    } else {
      return arrow::Status::IOError("the worker at ", endpoint_,
                                    " answered Manage with another branch than asked "
                                    "(protocol violation)");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    local_replies_.push_back(ControlReply(std::move(reply)));
    return arrow::Status::OK();
  }

  // Blocks until the receiving side has something to read: an answer is owed
  // (InitResponses, a batch) or Finish or Cancel went out. False once shut down.
  bool WaitForWork(Execution& execution) {
    std::unique_lock<std::mutex> lock(execution.mutex);
    execution.sent.wait(lock, [&] {
      return !execution.ready || execution.draining || !execution.pending.empty() ||
             execution.finish_sent || execution.cancel_sent || ShutDown();
    });
    if (execution.cancel_sent) execution.draining = true;
    return !ShutDown();
  }

  bool ShutDown() {
    std::lock_guard<std::mutex> lock(mutex_);
    return shut_down_;
  }

  // The Init could not be translated: quiver.v1's Error now, CancelResponse
  // once the engine cancels.
  arrow::Result<WorkerReply> ReceiveRefused(const std::shared_ptr<Execution>& execution) {
    v1::WorkerMessage message;
    if (!execution->ready) {
      execution->ready = true;
      message.mutable_error()->mutable_worker_error()->set_message(execution->local_error);
      return ControlReply(std::move(message));
    }
    {
      std::unique_lock<std::mutex> lock(execution->mutex);
      execution->sent.wait(lock, [&] { return execution->cancel_sent || ShutDown(); });
    }
    Retire(execution);
    message.mutable_cancel_response();
    return ControlReply(std::move(message));
  }

  // Reads the next message of `stream`; its end is a transport failure.
  arrow::Result<proto::UdfResponse> Next(Execution& execution, UdfStream& stream) {
    auto read = stream.call->Read();
    if (!read.ok()) return Violation(execution, stream, "sent " + read.status().message());
    if (!read->has_value()) {
      const grpc::Status status = stream.call->Finish();
      stream.terminated = true;
      return arrow::Status::IOError(
          "the worker at ", endpoint_, " ended the Execute stream of UDF '", stream.name,
          "' without FinishResponse or CancelResponse (gRPC status ",
          static_cast<int>(status.error_code()), ": ", status.error_message(), ")");
    }
    return std::move(**read);
  }

  // Fails the execution for a message the protocol does not allow.
  arrow::Status Violation(Execution& execution, UdfStream& stream, const std::string& what) {
    UdfErrorDetail detail;
    detail.kind = UdfErrorKind::kProtocolViolation;
    arrow::Status violation =
        WithUdfError(arrow::Status::IOError("broke Spark's protocol on the Execute stream of UDF '",
                                            stream.name, "': it ", what),
                     std::move(detail));
    {
      std::lock_guard<std::mutex> lock(execution.mutex);
      execution.violation = violation;
    }
    execution.broken = true;
    for (UdfStream& each : execution.streams) each.call->Cancel();
    return violation;
  }

  // Reports `error` of `stream` as quiver.v1's Error and cancels every stream,
  // since the .proto requires Cancel after an error and the execution has failed.
  arrow::Result<WorkerReply> Failed(Execution& execution, UdfStream& stream,
                                    const proto::ExecutionError& error,
                                    std::optional<uint64_t> sequence) {
    v1::WorkerMessage message;
    if (!TranslateError(error, stream.name, message.mutable_error())) {
      return Violation(execution, stream, "sent an ExecutionError with no kind set");
    }
    if (sequence) {
      message.mutable_error()->set_sequence(*sequence);
      message.mutable_error()->set_has_sequence(true);
    }
    ARROW_RETURN_NOT_OK(CancelAll(execution));
    execution.draining = true;
    return ControlReply(std::move(message));
  }

  arrow::Status CancelAll(Execution& execution) {
    std::vector<UdfStream*> targets;
    {
      std::lock_guard<std::mutex> lock(execution.mutex);
      for (UdfStream& stream : execution.streams) {
        if (stream.cancel_sent || stream.terminated) continue;
        stream.cancel_sent = true;
        targets.push_back(&stream);
      }
    }
    proto::UdfRequest request;
    request.mutable_control()->mutable_cancel()->set_reason("another response reported an error");
    const grpc::ByteBuffer bytes = SerializeRequest(request);
    for (UdfStream* stream : targets) stream->call->Write(bytes);  // a dead call shows on read
    return arrow::Status::OK();
  }

  // Reads every stream's InitResponse; their result fields make quiver.v1's.
  arrow::Result<WorkerReply> ReceiveInit(Execution& execution) {
    arrow::FieldVector fields;
    for (UdfStream& stream : execution.streams) {
      ARROW_ASSIGN_OR_RAISE(proto::UdfResponse response, Next(execution, stream));
      if (!response.control().has_init()) {
        return Violation(execution, stream,
                         "sent " + MessageName(response) + " before InitResponse");
      }
      const proto::InitResponse& init = response.control().init();
      if (init.has_error()) return Failed(execution, stream, init.error(), std::nullopt);
      auto schema = protocol::DeserializeSchema(init.data());
      if (!schema.ok() || (*schema)->num_fields() != 1) {
        return Violation(
            execution, stream,
            "answered Init without the result schema in InitResponse.data (one "
            "encapsulated Arrow schema message with one field, "
            "docs/spark-protocol.md section 2)" +
                (schema.ok() ? ": it has " + std::to_string((*schema)->num_fields()) + " fields"
                             : ": " + schema.status().message()));
      }
      if ((*schema)->field(0)->name() != stream.name) {
        return Violation(execution, stream,
                         "named its result column '" + (*schema)->field(0)->name() +
                             "' in InitResponse.data, not '" + stream.name + "' (udf.name)");
      }
      stream.result = (*schema)->field(0);
      fields.push_back(stream.result);
    }
    execution.ready = true;
    ARROW_ASSIGN_OR_RAISE(std::string schema,
                          protocol::SerializeSchema(arrow::Schema(std::move(fields))));
    v1::WorkerMessage message;
    message.mutable_init_response()->set_result_schema(std::move(schema));
    return ControlReply(std::move(message));
  }

  // Reads one DataResponse of every stream for `batch` and joins them.
  arrow::Result<WorkerReply> ReceiveBatch(Execution& execution, const PendingBatch& batch) {
    arrow::FieldVector fields;
    arrow::ArrayVector columns;
    for (UdfStream& stream : execution.streams) {
      ARROW_ASSIGN_OR_RAISE(proto::UdfResponse response, Next(execution, stream));
      if (response.has_control() && response.control().has_error()) {
        PopPending(execution);
        return Failed(execution, stream, response.control().error().error(), batch.sequence);
      }
      if (!response.has_data()) {
        return Violation(execution, stream,
                         "sent " + MessageName(response) + " where the answer to batch " +
                             std::to_string(batch.sequence) + " was due");
      }
      auto decoded = DecodeDataResponse(std::move(*response.mutable_data()->mutable_data()));
      if (!decoded.ok()) {
        return Violation(execution, stream,
                         "answered batch " + std::to_string(batch.sequence) +
                             " with DataResponse.data that is not one Arrow IPC stream of one "
                             "record batch: " +
                             decoded.status().message());
      }
      std::shared_ptr<arrow::RecordBatch> result = *decoded;
      if (result->num_rows() != batch.rows) {
        // The engine's own check reports it (kWrongRowCount): the rows cannot be joined.
        PopPending(execution);
        WorkerReply reply;
        reply.sequence = batch.sequence;
        reply.batch = std::move(result);
        return reply;
      }
      for (int i = 0; i < result->num_columns(); ++i) {
        fields.push_back(result->schema()->field(i));
        columns.push_back(result->column(i));
      }
    }
    PopPending(execution);
    WorkerReply reply;
    reply.sequence = batch.sequence;
    reply.batch =
        arrow::RecordBatch::Make(arrow::schema(std::move(fields)), batch.rows, std::move(columns));
    return reply;
  }

  void PopPending(Execution& execution) {
    std::lock_guard<std::mutex> lock(execution.mutex);
    execution.pending.pop_front();
  }

  // After Finish: every stream's terminator.
  arrow::Result<WorkerReply> ReceiveTerminators(const std::shared_ptr<Execution>& execution) {
    for (UdfStream& stream : execution->streams) {
      if (stream.terminated) continue;
      ARROW_ASSIGN_OR_RAISE(proto::UdfResponse response, Next(*execution, stream));
      const proto::UdfControlResponse& control = response.control();
      if (response.has_control() && control.has_error()) {
        return Failed(*execution, stream, control.error().error(), std::nullopt);
      }
      if (!response.has_control() || !control.has_finish()) {
        return Violation(*execution, stream,
                         "sent " + MessageName(response) +
                             " after every batch was answered and Finish was sent");
      }
      ARROW_RETURN_NOT_OK(Conclude(*execution, stream, control.finish().metrics()));
      stream.finished = true;
      if (control.finish().has_error()) {
        return Failed(*execution, stream, control.finish().error(), std::nullopt);
      }
    }
    Retire(execution);
    v1::WorkerMessage message;
    *message.mutable_finish_response()->mutable_metrics() = MergeMetrics(StreamMetrics(*execution));
    return ControlReply(std::move(message));
  }

  // After Cancel or an error: reads every stream to its terminator, dropping
  // what was under way (answers, an error, an InitResponse).
  arrow::Result<WorkerReply> Drain(const std::shared_ptr<Execution>& execution) {
    for (UdfStream& stream : execution->streams) {
      while (!stream.terminated) {
        ARROW_ASSIGN_OR_RAISE(proto::UdfResponse response, Next(*execution, stream));
        const proto::UdfControlResponse& control = response.control();
        if (control.has_finish()) {
          ARROW_RETURN_NOT_OK(Conclude(*execution, stream, control.finish().metrics()));
        } else if (control.has_cancel()) {
          ARROW_RETURN_NOT_OK(Conclude(*execution, stream, control.cancel().metrics()));
        }
      }
    }
    Retire(execution);
    v1::WorkerMessage message;
    *message.mutable_cancel_response()->mutable_metrics() = MergeMetrics(StreamMetrics(*execution));
    return ControlReply(std::move(message));
  }

  // Ends a stream whose terminator arrived: half-close (the .proto: only once the
  // outcome is known), then its end, with nothing more from the worker.
  arrow::Status Conclude(Execution& execution, UdfStream& stream,
                         const google::protobuf::Map<std::string, std::string>& metrics) {
    stream.terminated = true;
    stream.metrics = metrics;
    stream.call->WritesDone();
    grpc::ByteBuffer extra;
    if (stream.call->ReadRaw(&extra)) {
      return Violation(execution, stream,
                       "sent a message after its FinishResponse or CancelResponse");
    }
    (void)stream.call->Finish();
    return arrow::Status::OK();
  }

  const std::string connection_;
  const std::string endpoint_;
  std::shared_ptr<grpc::Channel> channel_;
  std::mutex mutex_;
  std::shared_ptr<Execution> execution_;
  std::deque<WorkerReply> local_replies_;
  bool shut_down_ = false;
  std::optional<v1::Init> waiting_init_;  // the sending thread's
  WriteWatchdog watchdog_;                // last: its thread uses the members above
};

}  // namespace

std::unique_ptr<Connection> ConnectSpark(const std::string& connection) {
  return std::make_unique<SparkConnection>(connection);
}

}  // namespace quiver::transport::spark
