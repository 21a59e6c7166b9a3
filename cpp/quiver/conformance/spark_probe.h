#pragma once

// The Spark-dialect kit's side of the conversation with one worker under test:
// it starts the worker as docs/spark-protocol.md section 1 says an engine does,
// opens Execute streams and Manage calls on it, and checks every answer against
// the contract, returning a Violation (scenario.h) that names the section.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "quiver/transport/spark/spark_client.h"
#include "quiver/worker/child_process.h"

namespace quiver::conformance {

namespace spark_proto = ::org::apache::spark::udf::worker;

/// What the Spark-dialect kit tests and how.
struct SparkKitOptions {
  /// The worker command; the kit appends `--id ID --connection CONNECTION`.
  std::vector<std::string> command;
  /// "unix" (a socket path) and/or "tcp" (a loopback port).
  std::vector<std::string> transports = {"unix", "tcp"};
  /// "symbol" (payload = the function's name) or "python/ref" (MODULE:NAME).
  std::string payload_format = "symbol";
  std::string python_module = "quiver.conformance_udfs";
  /// Time the worker has for each answer and to start.
  std::chrono::milliseconds timeout{30000};
};

/// \brief One worker process under test and the kit's calls to it.
class SparkProbe {
 public:
  /// Starts the worker on `transport` with a socket in `directory`, waits until
  /// it answers a heartbeat from its own pid.
  static arrow::Result<std::unique_ptr<SparkProbe>> Start(const SparkKitOptions& options,
                                                          const std::string& transport,
                                                          const std::string& directory,
                                                          int worker_number);
  ~SparkProbe();

  const SparkKitOptions& options() const { return options_; }
  worker::ChildProcess& process() { return *process_; }
  grpc::Channel* channel() { return channel_.get(); }

  /// Opens an Execute stream that fails after the kit's timeout.
  std::unique_ptr<transport::spark::ExecuteCall> Open();

  /// Returns an Init of the kit's function `function` over `arguments`, its
  /// result declared `returns` in output_schema when not null.
  arrow::Result<spark_proto::UdfRequest> Init(
      const std::string& function, const std::vector<std::shared_ptr<arrow::DataType>>& arguments,
      const std::shared_ptr<arrow::DataType>& returns) const;

  /// Sends `request`, failing with a Violation of `section` when the stream is closed.
  arrow::Status Send(transport::spark::ExecuteCall& call, const spark_proto::UdfRequest& request);
  arrow::Status SendBatch(transport::spark::ExecuteCall& call, const arrow::RecordBatch& batch);
  arrow::Status SendControl(transport::spark::ExecuteCall& call, const std::string& which);

  /// Reads the next response; the end of the stream or a timeout is a Violation.
  arrow::Result<spark_proto::UdfResponse> Next(transport::spark::ExecuteCall& call,
                                               const std::string& waiting_for);

  /// Reads InitResponse and checks it has no error and one result field named `name`.
  arrow::Status ExpectInitOk(transport::spark::ExecuteCall& call, const std::string& name);
  /// Reads InitResponse (InitResponse.error of `kind`: "user", "worker", "protocol").
  arrow::Status ExpectInitError(transport::spark::ExecuteCall& call, const std::string& kind,
                                const std::string& section);
  /// Reads a DataResponse of `rows` rows; returns its batch.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> ExpectData(transport::spark::ExecuteCall& call,
                                                                int64_t rows);
  /// Reads ErrorResponse of `kind`.
  arrow::Status ExpectError(transport::spark::ExecuteCall& call, const std::string& kind,
                            const std::string& section);
  /// Reads messages until the terminator, dropping DataResponses when
  /// `skip_data`; returns it. Checks the stream then ends.
  arrow::Result<spark_proto::UdfControlResponse> ExpectTerminator(
      transport::spark::ExecuteCall& call, bool skip_data, const std::string& section);
  /// Sends Cancel, reads to CancelResponse.
  arrow::Status CancelAndExpectCancelResponse(transport::spark::ExecuteCall& call,
                                              const std::string& section);

  /// Manage(Heartbeat) answered: returns the metrics.
  arrow::Result<std::map<std::string, std::string>> Heartbeat();
  /// Manage(Shutdown) answered: returns sessions_settled.
  arrow::Result<bool> Shutdown(bool cancel_sessions);

 private:
  SparkProbe(SparkKitOptions options, std::unique_ptr<worker::ChildProcess> process,
             std::shared_ptr<grpc::Channel> channel);

  SparkKitOptions options_;
  std::unique_ptr<worker::ChildProcess> process_;
  std::shared_ptr<grpc::Channel> channel_;
};

/// Returns a batch of `rows` int64 values 0, 1, ... in a column named "x".
std::shared_ptr<arrow::RecordBatch> Int64Batch(int64_t rows);
/// Returns a batch of `rows` strings "a0", "a1", ... in a column named "s".
std::shared_ptr<arrow::RecordBatch> StringBatch(int64_t rows);

}  // namespace quiver::conformance
