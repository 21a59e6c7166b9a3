#pragma once

// The kit's side of the conversation with one worker under test: it sends
// engine messages through the worker's Connection, as an engine would, and
// checks every answer against docs/protocol.md, returning a Violation that
// names the section when an answer is not one the spec allows.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "quiver/conformance/kit_transport.h"
#include "quiver/transport/connection.h"
#include "quiver/v1/quiver.pb.h"
#include "quiver/worker/worker.h"
#include "quiver/worker/worker_dispatcher.h"

namespace quiver::conformance {

/// How the kit names the worker's functions and how long it waits.
struct ProbeOptions {
  /// "symbol" (payload = the function's name) or "python/ref" (payload =
  /// PYTHON_MODULE:NAME).
  std::string payload_format = "symbol";
  std::string python_module = "quiver.conformance_udfs";
  /// Time the worker has for each answer.
  std::chrono::milliseconds timeout{30000};
  /// The worker command, for scenarios that start a worker by hand (a
  /// malformed secret, other command lines than the engine's).
  std::vector<std::string> command;
};

/// One UDF of an Init: the kit's function `function` over input columns `arguments`.
struct KitCall {
  std::string name;
  std::string function;
  std::vector<int> arguments;
  /// Declared in UdfDefinition.return_type; null leaves the type to the worker.
  std::shared_ptr<arrow::DataType> return_type;
};

/// Returns "Data{sequence 3, 10 rows}", "Error{ProtocolError: ...}", ... for messages.
std::string DescribeReply(const transport::WorkerReply& reply);

class Probe;

/// \brief Sends batches on a thread of its own while the caller reads the
/// answers, as the spec asks of an engine (a worker may block writing a result
/// until it is read). Optionally ends the stream with Finish or Cancel.
class BackgroundSender {
 public:
  /// Starts sending `batches` with sequences first, first + stride, ...
  BackgroundSender(Probe& probe, std::vector<std::shared_ptr<arrow::RecordBatch>> batches,
                   uint64_t first_sequence, uint64_t stride);
  /// Joins the thread (after cancelling, if Join was not called).
  ~BackgroundSender();

  /// Asks the thread to send no more batches and to send Cancel instead (also
  /// when every batch was already sent).
  void Cancel();

  /// Lets the thread end without Cancel once every batch is sent, waits for
  /// it, and returns how its sends went.
  arrow::Status Join();

 private:
  void Run(Probe& probe, const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches,
           uint64_t first_sequence, uint64_t stride);

  std::mutex mutex_;
  std::condition_variable decided_;
  std::atomic<bool> cancel_{false};
  bool done_ = false;  // Join was called: no Cancel to send
  arrow::Status status_;
  std::thread thread_;
};

/// \brief The worker under test on one transport, and checked exchanges with it.
class Probe {
 public:
  Probe(worker::WorkerDispatcher* dispatcher, std::string transport, ProbeOptions options);
  ~Probe();

  /// Makes sure a healthy worker is at hand, starting a new one when the last
  /// one ended or is in an unknown state.
  arrow::Status EnsureWorker();
  /// Gives up the current worker (stops it); the next EnsureWorker starts another.
  void Retire();

  worker::Worker& worker() { return *worker_; }
  worker::WorkerDispatcher& dispatcher() { return *dispatcher_; }
  transport::Connection& connection() { return worker_->connection(); }
  /// What the kit recorded while the current worker started.
  const StartedWorker& started() const { return *started_; }
  const std::string& transport() const { return transport_; }
  bool grpc() const { return transport_.rfind("grpc", 0) == 0; }
  const ProbeOptions& options() const { return options_; }

  /// Returns an Init of `calls` over columns of `input_schema`.
  arrow::Result<v1::Init> MakeInit(const arrow::Schema& input_schema,
                                   const std::vector<KitCall>& calls) const;

  arrow::Status Send(const v1::EngineMessage& message);
  arrow::Status SendInit(const v1::Init& init);
  arrow::Status SendData(uint64_t sequence, const arrow::RecordBatch& batch);
  arrow::Status SendFinish();
  arrow::Status SendCancel();
  arrow::Status SendHeartbeat(uint64_t nonce);
  arrow::Status SendShutdown(bool cancel_running);

  /// Waits for the worker's next message.
  arrow::Result<transport::WorkerReply> Next();

  /// Expects the next message to be the control message `expected`; with
  /// `skip_data`, result Data before it are read and dropped (as the spec allows
  /// around Cancel and Heartbeat). `section` is what a wrong answer violates.
  arrow::Result<v1::WorkerMessage> Expect(v1::WorkerMessage::KindCase expected,
                                          const std::string& section, const std::string& context,
                                          bool skip_data = false);

  /// Expects an Error of `kind` (v1::Error::KindCase).
  arrow::Result<v1::Error> ExpectError(v1::Error::KindCase kind, const std::string& section,
                                       const std::string& context);

  /// Expects the result of batch `sequence` with `rows` rows matching `schema`.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> ExpectData(uint64_t sequence, int64_t rows,
                                                                const arrow::Schema& schema,
                                                                const std::string& context);

  /// Sends Init, expects InitResponse and returns its result schema, checked
  /// for one field per UDF named after it.
  arrow::Result<std::shared_ptr<arrow::Schema>> Open(const v1::Init& init,
                                                     const std::string& context);

  /// Sends Finish and expects FinishResponse.
  arrow::Result<v1::Metrics> Finish(const std::string& context);

  /// Sends Cancel and expects CancelResponse, dropping results that were on their way.
  arrow::Result<v1::Metrics> Cancel(const std::string& context);

  /// Runs one execution: Open, every batch sent before any answer is read
  /// (sequences first, first + stride, ...), every answer checked, Finish.
  arrow::Result<std::vector<std::shared_ptr<arrow::RecordBatch>>> Execute(
      const v1::Init& init, const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches,
      const std::string& context, uint64_t first_sequence = 0, uint64_t stride = 1);

  /// Checks that the worker still serves an execution (identity over strings).
  arrow::Status ExpectStillServes(const std::string& after);

  /// Expects the worker process to exit with `code` within the timeout.
  arrow::Status ExpectExit(int code, const std::string& section, const std::string& context);

 private:
  worker::WorkerDispatcher* dispatcher_;
  std::string transport_;
  ProbeOptions options_;
  std::unique_ptr<worker::Worker> worker_;
  std::shared_ptr<StartedWorker> started_;
};

}  // namespace quiver::conformance
