#include "quiver/sdk/grpc_execute_call.h"

#include <thread>
#include <utility>

#include "quiver/sdk/grpc_codec.h"
#include "quiver/sdk/log.h"
#include "quiver/sdk/worker_state.h"

namespace quiver::sdk {
namespace {

// How long the engine has to half-close after the execution ended.
constexpr std::chrono::seconds kHalfCloseWait{5};

// Writes the state machine's answers on the call's response stream.
class StreamSink : public MessageSink {
 public:
  explicit StreamSink(ExecuteStream* stream) : stream_(stream) {}

  arrow::Status SendControl(const v1::WorkerMessage& message) override {
    return Write(EncodeWorkerControl(message));
  }

  arrow::Status SendData(uint64_t sequence, const arrow::RecordBatch& batch) override {
    ARROW_ASSIGN_OR_RAISE(grpc::ByteBuffer buffer, EncodeWorkerData(sequence, batch));
    return Write(buffer);
  }

 private:
  arrow::Status Write(const grpc::ByteBuffer& buffer) {
    if (!stream_->Write(buffer)) {
      return arrow::Status::IOError("the Execute call ended before the worker could answer");
    }
    return arrow::Status::OK();
  }

  ExecuteStream* stream_;
};

arrow::Status Dispatch(const grpc::ByteBuffer& message, WorkerStateMachine* machine) {
  auto request = DecodeEngineRequest(message);
  if (!request.ok()) return machine->Reject(request.status().message());
  if (!request->control) return machine->OnBatch(request->sequence, std::move(request->body));
  if (request->control->has_shutdown()) {
    return machine->Reject(
        "Shutdown is not a message of the Execute call: over grpc it is a Manage call");
  }
  return machine->OnMessage(*request->control);
}

}  // namespace

ExecuteCall::ExecuteCall(grpc::ServerContext* context, ExecuteStream* stream,
                         const Registry* registry)
    : context_(context), stream_(stream), registry_(registry) {}

grpc::Status ExecuteCall::Run() {
  std::thread reader([this] { Read(); });
  StreamSink sink(stream_);
  WorkerStateMachine machine(registry_, &sink);
  grpc::Status status = Serve(&machine);
  machine.Close();
  StopReading();
  reader.join();
  return status;
}

void ExecuteCall::Read() {
  grpc::ByteBuffer message;
  while (stream_->Read(&message)) inbox_.Push(Item{std::move(message), std::nullopt});
  inbox_.End();
}

void ExecuteCall::RequestStop(const std::string& reason) {
  inbox_.PushStop(Item{grpc::ByteBuffer(), reason});
}

grpc::Status ExecuteCall::Serve(WorkerStateMachine* machine) {
  while (true) {
    std::optional<Item> item = inbox_.Next();
    if (!item) {
      if (context_->IsCancelled()) {
        Log(LogLevel::kInfo, "the engine cancelled an Execute call");
        return grpc::Status::CANCELLED;
      }
      if (machine->state() == WorkerState::kRunning) {
        (void)machine->Reject("the Execute call's requests ended before Finish or Cancel");
      }
      return grpc::Status::OK;
    }
    arrow::Status handled;
    if (item->stop_reason) {
      if (machine->state() == WorkerState::kIdle) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            *item->stop_reason + "; no execution ran");
      }
      v1::EngineMessage cancel;
      cancel.mutable_cancel()->set_reason(*item->stop_reason);
      handled = machine->OnMessage(cancel);
    } else {
      handled = Dispatch(item->message, machine);
    }
    if (!handled.ok()) {
      Log(LogLevel::kWarning, handled.message());
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, handled.message());
    }
    // One execution per call: the call ends with its FinishResponse or CancelResponse.
    if (machine->executions_ended() > 0) return grpc::Status::OK;
  }
}

void ExecuteCall::StopReading() {
  if (!inbox_.WaitForEnd(kHalfCloseWait)) {
    Log(LogLevel::kWarning, "the engine did not half-close an Execute call that ended; closing it");
    context_->TryCancel();
  }
}

}  // namespace quiver::sdk
