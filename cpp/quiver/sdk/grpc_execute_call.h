#pragma once

// One Execute call of the gRPC transport: one execution, driven by its own state
// machine on the call's thread, with a reader thread that queues the requests
// so that the worker can be asked to stop between them (Manage(shutdown) with
// cancel_running, SIGTERM, the engine's death).

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>

#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>
#include <grpcpp/support/sync_stream.h>

#include "quiver/sdk/call_inbox.h"
#include "quiver/sdk/registry.h"

namespace quiver::sdk {

/// The stream of an Execute call, with raw (hand-encoded) messages.
using ExecuteStream = grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;

/// \brief Serves one Execute call.
class ExecuteCall {
 public:
  /// Prepares the call; Run serves it.
  ExecuteCall(grpc::ServerContext* context, ExecuteStream* stream, const Registry* registry);

  /// Serves the execution until its FinishResponse or CancelResponse, or until
  /// the requests end; returns the call's status.
  grpc::Status Run();

  /// Asks the call to cancel its execution (answering CancelResponse) and end.
  /// Thread-safe.
  void RequestStop(const std::string& reason);

 private:
  struct Item {
    grpc::ByteBuffer message;
    std::optional<std::string> stop_reason;
  };

  void Read();
  grpc::Status Serve(class WorkerStateMachine* machine);
  // Waits until the reader is done, cancelling the call when the engine does
  // not half-close in time: the stream must not be read after Run returns.
  void StopReading();

  grpc::ServerContext* context_;
  ExecuteStream* stream_;
  const Registry* registry_;
  CallInbox<Item> inbox_;
};

}  // namespace quiver::sdk
