#pragma once

// One Execute stream of Spark's dialect (docs/spark-protocol.md, sections 2-4
// and 6): the order of its messages, the payload's assembly and checks, and the
// translation of its Init into the quiver.v1 Execution that binds and runs the
// UDF. It knows nothing of gRPC: a transport adapter (spark_execute_call) feeds
// it the engine's requests and hands it a SparkSink for the answers.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/record_batch.h>
#include <arrow/status.h>

#include "quiver/sdk/execution.h"
#include "quiver/sdk/registry.h"
#include "quiver/sdk/spark_codec.h"

namespace quiver::sdk {

/// The one version of Spark's protocol there is.
inline constexpr uint32_t kSparkProtocolVersion = 1;
/// What a stream cancelled from inside the worker is told.
inline constexpr char kShuttingDown[] = "the worker is shutting down";

/// Carries a session's answers to the engine.
class SparkSink {
 public:
  virtual ~SparkSink() = default;
  /// Sends one control answer.
  virtual arrow::Status SendControl(const sparkpb::UdfControlResponse& control) = 0;
  /// Sends `batch` as DataResponse.data; returns the bytes of its IPC stream.
  virtual arrow::Result<uint64_t> SendData(const arrow::RecordBatch& batch) = 0;
  /// Tells whether a Cancel (or a stop from inside the worker) already waits
  /// behind the request being handled: batches in between are dropped, and a
  /// Finish is not answered.
  virtual bool CancelAhead() { return false; }
};

/// The worker-wide totals of every stream's counters (HeartbeatResponse.metrics).
class SparkTotals {
 public:
  /// The per-execution keys of section 6 that add up across streams.
  static constexpr std::array<const char*, 8> kKeys = {"rows_in",     "rows_out",     "batches_in",
                                                       "batches_out", "bytes_in",     "bytes_out",
                                                       "udf_time_ns", "codec_time_ns"};
  using Counters = std::array<uint64_t, kKeys.size()>;

  /// Adds a stream's counters to the totals.
  void Add(const Counters& delta);
  /// Returns the totals as metrics entries.
  std::map<std::string, std::string> ToMetrics() const;

 private:
  std::array<std::atomic<uint64_t>, kKeys.size()> values_{};
};

/// Where a stream is.
enum class SparkStage {
  kAwaitingInit,  // waits for Init
  kChunking,      // Init said the payload comes in chunks: waits for `last`
  kRunning,       // InitResponse sent without error: answers batches
  kFinishing,     // Finish came with a Cancel already behind it
  kFailed,        // an error was sent: waits for Cancel
  kDone,          // the terminator was sent
};

/// \brief One Execute stream.
///
/// Every method returns the sink's failure (the stream is gone) and OK
/// otherwise: what goes wrong in the execution is answered on the stream.
class SparkSession {
 public:
  /// `registry`, `sink` and `totals` must outlive the session.
  SparkSession(const Registry* registry, SparkSink* sink, SparkTotals* totals);
  /// Runs the teardowns of the execution's functions.
  ~SparkSession();

  /// Handles one control request.
  arrow::Status OnControl(const sparkpb::UdfControlRequest& control);
  /// Handles one DataRequest, whose data arrived as `data` (`size` bytes).
  arrow::Status OnData(const std::vector<std::shared_ptr<arrow::Buffer>>& data, uint64_t size);
  /// The engine ended its requests (a half-close): as Cancel, with a
  /// ProtocolError unless Finish came first.
  arrow::Status RequestsEnded();
  /// Stops the stream from inside the worker (shutdown with cancel_sessions,
  /// SIGTERM): ErrorResponse{WorkerError} in the data phase, then
  /// CancelResponse; before InitResponse the WorkerError rides on
  /// CancelResponse; a stream that failed gets its CancelResponse only.
  arrow::Status Stop(const std::string& reason);
  /// Answers a request that breaks the protocol where it arrives, where the
  /// .proto says (InitResponse.error, ErrorResponse, or the terminator's error).
  arrow::Status Violation(const std::string& message);

  SparkStage stage() const { return stage_; }
  bool done() const { return stage_ == SparkStage::kDone; }

 private:
  arrow::Status OnInit(const sparkpb::Init& init);
  arrow::Status OnChunk(const sparkpb::PayloadChunk& chunk);
  arrow::Status OnFinish();
  arrow::Status Load(const sparkpb::Init& init, const std::string& payload);
  arrow::Status Run(const std::vector<std::shared_ptr<arrow::Buffer>>& data);
  arrow::Status Terminate();
  arrow::Status FailInit(const arrow::Status& failure);
  arrow::Status Fail(const arrow::Status& failure);
  SparkTotals::Counters Counters() const;
  void Publish();
  std::map<std::string, std::string> Metrics() const;

  const Registry* registry_;
  SparkSink* sink_;
  SparkTotals* totals_;
  SparkStage stage_ = SparkStage::kAwaitingInit;
  std::optional<sparkpb::Init> pending_init_;
  std::string pending_payload_;
  std::unique_ptr<Execution> execution_;
  std::shared_ptr<arrow::Buffer> input_schema_;
  uint64_t batches_in_ = 0;
  uint64_t batches_out_ = 0;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  SparkTotals::Counters published_{};
  bool finish_seen_ = false;
  std::optional<arrow::Status> terminator_error_;
};

/// Checks a Spark Init (section 2) with its assembled payload and says it as
/// the quiver.v1 Init of one UDF whose arguments are every input column; fails
/// with the ProtocolError or WorkerError the contract names.
arrow::Result<v1::Init> TranslateSparkInit(const sparkpb::Init& init, const std::string& payload);

/// Returns Spark's ExecutionError for a failure made by quiver/sdk/errors.h.
sparkpb::ExecutionError SparkErrorOf(const arrow::Status& failure);

}  // namespace quiver::sdk
