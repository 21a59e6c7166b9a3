#pragma once

// The client side of Spark's UdfWorker gRPC service (proto/spark), called through
// gRPC's generic API as quiver.v1's is: a channel to a worker's endpoint, the
// unary Manage call, and one Execute stream. Shared by the engine's `spark`
// transport and the Spark-dialect conformance kit.

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <arrow/result.h>
#include <arrow/status.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/sync_stream.h>

#include "udf_message.pb.h"

namespace quiver::transport::spark {

namespace proto = ::org::apache::spark::udf::worker;

/// Returns the gRPC address of a Spark worker's `--connection` value: a value of
/// decimal digits is a loopback TCP port, anything else a Unix socket path.
std::string SparkAddress(const std::string& connection);

/// Makes a channel to `address` (SparkAddress). `probe`: for readiness probes,
/// with its own subchannels and short reconnection pauses.
std::shared_ptr<grpc::Channel> MakeSparkChannel(const std::string& address, bool probe = false);

/// How a Manage call ended: the gRPC status, and the response when it is OK.
struct ManageReply {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
  proto::WorkerResponse response;
};

/// Calls Manage, waiting at most `timeout` (for a starting worker too when
/// `wait_for_ready`).
ManageReply CallSparkManage(grpc::Channel* channel, const proto::WorkerRequest& request,
                            std::chrono::milliseconds timeout, bool wait_for_ready = true);

/// Asks the worker for a heartbeat and returns the pid it reports in
/// `metrics["pid"]`; fails when it does not answer, answers with another branch,
/// or reports no pid as a decimal number.
arrow::Result<int64_t> PingSparkWorker(grpc::Channel* channel, std::chrono::milliseconds timeout);

/// \brief One Execute call. Writes come from any thread (one at a time: they
/// are serialized here); reads from one thread.
class ExecuteCall {
 public:
  /// Opens the call; it fails (reads and writes return false) once `timeout`
  /// passed, when one is given.
  explicit ExecuteCall(grpc::Channel* channel,
                       std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  ~ExecuteCall();

  /// Writes one message; false when the call is over (cancelled or broken).
  bool Write(const grpc::ByteBuffer& bytes);
  bool Write(const proto::UdfRequest& request);

  /// Half-closes the request stream (once; later calls do nothing).
  void WritesDone();

  /// Reads the next message: nullopt at the end of the stream; an error when
  /// the bytes are not a UdfResponse.
  arrow::Result<std::optional<proto::UdfResponse>> Read();

  /// Reads the raw next message; false at the end of the stream.
  bool ReadRaw(grpc::ByteBuffer* bytes);

  /// Waits for the call's status (after the stream ended).
  grpc::Status Finish();

  /// Ends the call at once: blocked reads and writes return false.
  void Cancel();

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream_;
  std::mutex write_mutex_;
  bool writes_done_ = false;
  bool finished_ = false;
};

/// Serializes a request as one gRPC message.
grpc::ByteBuffer SerializeRequest(const proto::UdfRequest& request);

/// Returns the IEEE CRC-32 of `bytes` (zlib's crc32), as UdfPayload.payload_crc32 wants it.
uint32_t Crc32(std::string_view bytes);

}  // namespace quiver::transport::spark
