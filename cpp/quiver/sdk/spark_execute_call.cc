#include "quiver/sdk/spark_execute_call.h"

#include <chrono>
#include <thread>
#include <utility>

#include "quiver/sdk/log.h"

namespace quiver::sdk {
namespace {

// How long the engine has to half-close after the stream's terminator.
constexpr std::chrono::seconds kHalfCloseWait{5};

bool IsCancel(const SparkRequest& request) {
  return request.control && request.control->has_cancel();
}

}  // namespace

// Writes the session's answers on the call's response stream.
class SparkStreamSink : public SparkSink {
 public:
  explicit SparkStreamSink(SparkExecuteCall* call) : call_(call) {}

  arrow::Status SendControl(const sparkpb::UdfControlResponse& control) override {
    return Write(EncodeSparkControl(control));
  }

  arrow::Result<uint64_t> SendData(const arrow::RecordBatch& batch) override {
    uint64_t bytes = 0;
    ARROW_ASSIGN_OR_RAISE(grpc::ByteBuffer buffer, EncodeSparkData(batch, &bytes));
    ARROW_RETURN_NOT_OK(Write(buffer));
    return bytes;
  }

  bool CancelAhead() override { return call_->StopWaiting(); }

 private:
  arrow::Status Write(const grpc::ByteBuffer& buffer) {
    if (!call_->stream_->Write(buffer)) {
      return arrow::Status::IOError("the Execute stream ended before the worker could answer");
    }
    return arrow::Status::OK();
  }

  SparkExecuteCall* call_;
};

SparkExecuteCall::SparkExecuteCall(grpc::ServerContext* context, SparkStream* stream,
                                   const Registry* registry, SparkTotals* totals)
    : context_(context), stream_(stream), registry_(registry), totals_(totals) {}

grpc::Status SparkExecuteCall::Run(const std::function<void()>& settled) {
  std::thread reader([this] { Read(); });
  grpc::Status status;
  {
    SparkStreamSink sink(this);
    SparkSession session(registry_, &sink, totals_);
    status = Serve(&session);
  }
  settled();
  StopReading();
  reader.join();
  return status;
}

void SparkExecuteCall::Read() {
  grpc::ByteBuffer message;
  while (stream_->Read(&message)) {
    auto decoded = DecodeSparkRequest(message);
    const bool cancel = decoded.ok() && IsCancel(*decoded);
    inbox_.Push(Item{std::move(decoded), std::nullopt}, cancel);
  }
  inbox_.End();
}

bool SparkExecuteCall::StopWaiting() { return inbox_.StopWaiting(); }

void SparkExecuteCall::RequestStop(const std::string& reason) {
  inbox_.PushStop(Item{SparkRequest{}, reason});
}

grpc::Status SparkExecuteCall::Serve(SparkSession* session) {
  while (!session->done()) {
    std::optional<Item> item = inbox_.Next();
    arrow::Status handled;
    if (!item) {
      if (context_->IsCancelled()) {
        Log(LogLevel::kInfo, "the engine cancelled an Execute stream");
        return grpc::Status::CANCELLED;  // a broken stream: nothing may be sent
      }
      handled = session->RequestsEnded();
    } else if (item->stop_reason) {
      inbox_.StopTaken();
      handled = session->Stop(*item->stop_reason);
    } else {
      const arrow::Result<SparkRequest>& request = item->request;
      if (request.ok() && IsCancel(*request)) inbox_.StopTaken();
      if (!request.ok()) {
        handled = session->Violation(request.status().message());
      } else if (request->control) {
        handled = session->OnControl(*request->control);
      } else {
        handled = session->OnData(request->data, request->data_size);
      }
    }
    if (!handled.ok()) {
      Log(LogLevel::kWarning, handled.message());
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, handled.message());
    }
  }
  return grpc::Status::OK;
}

void SparkExecuteCall::StopReading() {
  if (!inbox_.WaitForEnd(kHalfCloseWait)) {
    Log(LogLevel::kWarning,
        "the engine did not half-close an Execute stream that ended; closing it");
    context_->TryCancel();
  }
}

}  // namespace quiver::sdk
