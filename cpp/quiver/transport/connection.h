#pragma once

// The transport interface: one bidirectional message stream between the engine
// and one worker. UdfOperator and the dispatcher speak only this interface.
//
// How to add a transport:
//  1. Make a folder transport/<name>/ with a CMake target quiver_transport_<name>
//     that links quiver_transport.
//  2. Implement Connection: SendControl / SendBatch must not copy Arrow buffers
//     when the medium allows it; Receive decodes whole messages; Shutdown must
//     wake a Receive blocked in another thread.
//  3. Implement Transport and WorkerEndpoint (worker_endpoint.h): the endpoint
//     of a worker the engine starts, its handshake, and (if the medium allows)
//     connections to workers running elsewhere.
//  4. Register it under its endpoint scheme (unix:, grpc+unix:, grpc+tcp:, ...)
//     with a TransportRegistration in the folder (registry.h); engines that
//     want it link the target whole. The dispatcher needs no change.
//  5. Instantiate the transport conformance tests for it.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include "quiver/io/deadline.h"
#include "quiver/v1/quiver.pb.h"

namespace quiver::transport {

/// One message from a worker: a control message, or a result batch.
struct WorkerReply {
  /// Set for control messages.
  std::optional<v1::WorkerMessage> control;
  /// Set for data messages, with the sequence number it answers.
  std::shared_ptr<arrow::RecordBatch> batch;
  uint64_t sequence = 0;
};

/// A connection to one worker. Sending and receiving may happen on two threads
/// at once; each direction is used by one thread at a time.
class Connection {
 public:
  virtual ~Connection() = default;

  /// Sends a control message.
  virtual arrow::Status SendControl(const v1::EngineMessage& message, io::Deadline deadline) = 0;

  /// Sends a batch as a Data message with `sequence`, straight from its buffers.
  virtual arrow::Status SendBatch(uint64_t sequence, const arrow::RecordBatch& batch,
                                  io::Deadline deadline) = 0;

  /// Waits for the next message. A closed connection is an IOError whose
  /// message says so (the worker exited or was killed).
  virtual arrow::Result<WorkerReply> Receive(io::Deadline deadline) = 0;

  /// Closes both directions; a Receive blocked in another thread returns.
  virtual void Shutdown() = 0;

  /// Returns whether Receive gives up at its deadline (else it waits until a
  /// message comes or Shutdown). Only then may the engine read an answer on the
  /// thread that waits for it, a hung worker still timing out; otherwise a
  /// thread of its own reads every reply and the waiting thread keeps the time.
  virtual bool ReceiveKeepsDeadline() const { return false; }

  /// Asks a healthy worker to exit, waiting for its answer at most until
  /// `deadline`, then shuts the connection down. Over a stream transport the
  /// closed stream is the request (the default); a transport without a stream
  /// between executions (gRPC) sends its shutdown call.
  virtual void Close(io::Deadline /*deadline*/) { Shutdown(); }

  /// Returns where this connection goes, for messages ("unix:/tmp/...").
  virtual std::string endpoint() const = 0;
};

}  // namespace quiver::transport
