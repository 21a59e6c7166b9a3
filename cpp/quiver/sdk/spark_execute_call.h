#pragma once

// One Execute stream of Spark's dialect: a SparkSession driven on the call's
// thread, with a reader thread that queues the requests, so that a batch can see
// a Cancel already waiting behind it and the worker can stop the stream between
// requests (ShutdownRequest with cancel_sessions, SIGTERM).

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>
#include <grpcpp/support/sync_stream.h>

#include "quiver/sdk/call_inbox.h"
#include "quiver/sdk/registry.h"
#include "quiver/sdk/spark_session.h"

namespace quiver::sdk {

/// The stream of an Execute call, with raw (hand-encoded) messages.
using SparkStream = grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;

/// \brief Serves one Execute stream.
class SparkExecuteCall {
 public:
  /// Prepares the call; Run serves it. The arguments must outlive the call.
  SparkExecuteCall(grpc::ServerContext* context, SparkStream* stream, const Registry* registry,
                   SparkTotals* totals);

  /// Serves the stream until its terminator is sent, or until it broke, and
  /// calls `settled` then (before waiting for the engine's half-close); returns
  /// the call's status.
  grpc::Status Run(const std::function<void()>& settled);

  /// Asks the stream to stop (see SparkSession::Stop). Thread-safe.
  void RequestStop(const std::string& reason);

 private:
  struct Item {
    /// A request as decoded by the reader (or why it does not decode).
    arrow::Result<SparkRequest> request;
    std::optional<std::string> stop_reason;
  };

  void Read();
  bool StopWaiting();
  grpc::Status Serve(SparkSession* session);
  // Waits until the reader is done, cancelling the call when the engine does
  // not half-close in time: the stream must not be read after Run returns.
  void StopReading();

  friend class SparkStreamSink;

  grpc::ServerContext* context_;
  SparkStream* stream_;
  const Registry* registry_;
  SparkTotals* totals_;
  CallInbox<Item> inbox_;
};

}  // namespace quiver::sdk
