#pragma once

// The worker's state machine (docs/protocol.md, section 2): idle, running,
// failed. It knows nothing of sockets or calls: a transport adapter (uds_server,
// grpc_server) feeds it the engine's messages and batches and hands it a
// MessageSink that carries the answers away.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <arrow/io/interfaces.h>
#include <arrow/record_batch.h>
#include <arrow/status.h>

#include "quiver/sdk/execution.h"
#include "quiver/sdk/registry.h"
#include "quiver/v1/quiver.pb.h"

namespace quiver::sdk {

/// Carries the state machine's answers to the engine.
class MessageSink {
 public:
  virtual ~MessageSink() = default;
  /// Sends one control message.
  virtual arrow::Status SendControl(const v1::WorkerMessage& message) = 0;
  /// Sends the result batch of `sequence`.
  virtual arrow::Status SendData(uint64_t sequence, const arrow::RecordBatch& batch) = 0;
};

/// Where the worker is in the life of an execution.
enum class WorkerState { kIdle, kRunning, kFailed };

/// \brief Drives executions one after another from the engine's messages.
///
/// Every method returns the sink's failure (the connection is gone) and OK
/// otherwise: what goes wrong inside an execution is answered with an Error.
class WorkerStateMachine {
 public:
  /// Starts idle; `registry` and `sink` must outlive the machine.
  WorkerStateMachine(const Registry* registry, MessageSink* sink);

  /// Handles one EngineMessage other than Data and Shutdown (the transport
  /// decides about Shutdown; Data arrives through OnBatch).
  arrow::Status OnMessage(const v1::EngineMessage& message);

  /// Answers the batch `sequence`, whose Arrow IPC stream `body` holds.
  arrow::Status OnBatch(uint64_t sequence, std::shared_ptr<arrow::io::InputStream> body);

  /// Answers a message not allowed here with a ProtocolError: the execution
  /// fails; when idle the worker stays idle; when failed it is only logged.
  arrow::Status Reject(const std::string& message, std::optional<uint64_t> sequence = std::nullopt);

  /// Ends the running execution without an answer (teardowns run now).
  void Close();

  /// Returns the current state.
  WorkerState state() const { return state_; }

  /// Returns how many FinishResponse / CancelResponse were sent.
  int64_t executions_ended() const { return executions_ended_; }

 private:
  arrow::Status OnInit(const v1::Init& init);
  arrow::Status OnPayloadChunk(const v1::PayloadChunk& chunk);
  arrow::Status OnFinish();
  arrow::Status OnCancel(const v1::Cancel& cancel);
  arrow::Status OnHeartbeat(const v1::Heartbeat& heartbeat);
  arrow::Status Load();
  // Sends the execution's one Error and moves to failed.
  arrow::Status Fail(const arrow::Status& failure, std::optional<uint64_t> sequence);
  arrow::Status SendError(v1::Error error, std::optional<uint64_t> sequence);
  arrow::Status EndExecution(bool finished);

  const Registry* registry_;
  MessageSink* sink_;
  WorkerState state_ = WorkerState::kIdle;
  std::unique_ptr<Execution> execution_;
  int64_t executions_ended_ = 0;
};

}  // namespace quiver::sdk
