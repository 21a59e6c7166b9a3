#include "quiver/sdk/worker_state.h"

#include <utility>

#include "quiver/sdk/errors.h"
#include "quiver/sdk/log.h"

namespace quiver::sdk {

WorkerStateMachine::WorkerStateMachine(const Registry* registry, MessageSink* sink)
    : registry_(registry), sink_(sink) {}

arrow::Status WorkerStateMachine::OnMessage(const v1::EngineMessage& message) {
  switch (message.kind_case()) {
    case v1::EngineMessage::kInit:
      return OnInit(message.init());
    case v1::EngineMessage::kPayloadChunk:
      return OnPayloadChunk(message.payload_chunk());
    case v1::EngineMessage::kFinish:
      return OnFinish();
    case v1::EngineMessage::kCancel:
      return OnCancel(message.cancel());
    case v1::EngineMessage::kHeartbeat:
      return OnHeartbeat(message.heartbeat());
    case v1::EngineMessage::kData:
      return Reject("EngineMessage.data is not accepted here");
    case v1::EngineMessage::kShutdown:
      return Reject("Shutdown is not accepted here");
    case v1::EngineMessage::kShmSetup:
    case v1::EngineMessage::kShmData:
    case v1::EngineMessage::kShmRelease:
      // The shm transport's server handles these; here (over uds, ShmSetup
      // twice) they are out of place.
      return Reject("shm transport messages are not accepted here");
    case v1::EngineMessage::KIND_NOT_SET:
      break;
  }
  return Reject("an EngineMessage holds no message (unknown or empty 'kind')");
}

arrow::Status WorkerStateMachine::OnInit(const v1::Init& init) {
  if (state_ != WorkerState::kIdle) {
    return Reject("Init during an execution (a worker serves one execution at a time)");
  }
  execution_ = std::make_unique<Execution>(registry_, init);
  state_ = WorkerState::kRunning;
  Log(LogLevel::kDebug, "Init: " + std::to_string(init.udfs_size()) + " UDF(s), " +
                            std::to_string(init.payload_chunk_count()) + " payload chunk(s)");
  return init.payload_chunk_count() == 0 ? Load() : arrow::Status::OK();
}

arrow::Status WorkerStateMachine::OnPayloadChunk(const v1::PayloadChunk& chunk) {
  if (state_ == WorkerState::kFailed) return arrow::Status::OK();
  if (state_ == WorkerState::kIdle) return Reject("PayloadChunk outside an execution");
  if (execution_->loaded()) {
    return Reject("PayloadChunk after the UDFs were loaded (more than Init announced)");
  }
  if (auto added = execution_->AddPayloadChunk(chunk); !added.ok()) return Fail(added, {});
  return execution_->chunks_left() == 0 ? Load() : arrow::Status::OK();
}

arrow::Status WorkerStateMachine::Load() {
  auto schema = execution_->Load();
  if (!schema.ok()) return Fail(schema.status(), {});
  v1::WorkerMessage answer;
  answer.mutable_init_response()->set_result_schema(*std::move(schema));
  return sink_->SendControl(answer);
}

arrow::Status WorkerStateMachine::OnBatch(uint64_t sequence,
                                          std::shared_ptr<arrow::io::InputStream> body) {
  if (state_ == WorkerState::kFailed) return arrow::Status::OK();  // ignored after an Error
  const std::string what = "Data (sequence " + std::to_string(sequence) + ")";
  if (state_ == WorkerState::kIdle) return Reject(what + " outside an execution", sequence);
  if (!execution_->loaded()) {
    return Reject(what + " before all PayloadChunk messages arrived", sequence);
  }
  auto result = execution_->Run(std::move(body));
  if (!result.ok()) return Fail(result.status(), sequence);
  return sink_->SendData(sequence, **result);
}

arrow::Status WorkerStateMachine::OnFinish() {
  if (state_ == WorkerState::kIdle) return Reject("Finish outside an execution");
  if (state_ == WorkerState::kRunning && !execution_->loaded()) {
    ARROW_RETURN_NOT_OK(Reject("Finish before all PayloadChunk messages arrived"));
  }
  return EndExecution(/*finished=*/true);
}

arrow::Status WorkerStateMachine::OnCancel(const v1::Cancel& cancel) {
  if (state_ == WorkerState::kIdle) return Reject("Cancel outside an execution");
  Log(LogLevel::kDebug, "Cancel: " + (cancel.reason().empty() ? "(no reason)" : cancel.reason()));
  return EndExecution(/*finished=*/false);
}

arrow::Status WorkerStateMachine::OnHeartbeat(const v1::Heartbeat& heartbeat) {
  v1::WorkerMessage answer;
  answer.mutable_heartbeat()->set_nonce(heartbeat.nonce());
  return sink_->SendControl(answer);
}

arrow::Status WorkerStateMachine::Reject(const std::string& message,
                                         std::optional<uint64_t> sequence) {
  if (state_ == WorkerState::kFailed) {
    // At most one Error per execution: after it, stray messages are only logged.
    Log(LogLevel::kWarning, "ignoring (execution already failed): " + message);
    return arrow::Status::OK();
  }
  if (state_ == WorkerState::kIdle) {
    // Outside an execution there is nothing to fail: report and stay idle.
    Log(LogLevel::kWarning, "protocol error: " + message);
    return SendError(ErrorOf(ProtocolError(message)), sequence);
  }
  return Fail(ProtocolError(message), sequence);
}

arrow::Status WorkerStateMachine::Fail(const arrow::Status& failure,
                                       std::optional<uint64_t> sequence) {
  Log(LogLevel::kWarning,
      failure.message() + (sequence ? " (batch " + std::to_string(*sequence) + ")" : ""));
  state_ = WorkerState::kFailed;
  if (execution_ != nullptr) execution_->Close();
  return SendError(ErrorOf(failure), sequence);
}

arrow::Status WorkerStateMachine::SendError(v1::Error error, std::optional<uint64_t> sequence) {
  if (sequence) {
    error.set_sequence(*sequence);
    error.set_has_sequence(true);
  }
  v1::WorkerMessage answer;
  *answer.mutable_error() = std::move(error);
  return sink_->SendControl(answer);
}

arrow::Status WorkerStateMachine::EndExecution(bool finished) {
  execution_->Close();
  v1::WorkerMessage answer;
  if (finished) {
    *answer.mutable_finish_response()->mutable_metrics() = execution_->metrics();
  } else {
    *answer.mutable_cancel_response()->mutable_metrics() = execution_->metrics();
  }
  execution_.reset();
  state_ = WorkerState::kIdle;
  ++executions_ended_;
  return sink_->SendControl(answer);
}

void WorkerStateMachine::Close() {
  if (execution_ != nullptr) execution_->Close();
}

}  // namespace quiver::sdk
