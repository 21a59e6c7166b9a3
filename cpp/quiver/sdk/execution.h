#pragma once

// One execution of a compiled worker: the UDFs of an Init bound to registered
// functions, run over batches, with the execution's metrics.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <arrow/io/interfaces.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "quiver/sdk/registry.h"
#include "quiver/v1/quiver.pb.h"

namespace quiver::sdk {

/// The payload format whose payload is the name of a registered function.
inline constexpr char kSymbolPayloadFormat[] = "symbol";

/// Returns the peak resident memory of this process so far, in bytes.
uint64_t PeakRssBytes();

/// \brief The state of one execution between Init and FinishResponse / CancelResponse.
///
/// Failures are Statuses made by quiver/sdk/errors.h (UserError, WorkerError,
/// ProtocolError), ready to be sent as the execution's Error.
class Execution {
 public:
  /// Holds `init`; nothing is checked until Load.
  Execution(const Registry* registry, v1::Init init);
  /// Runs the teardown of every function whose setup ran.
  ~Execution();

  Execution(const Execution&) = delete;
  Execution& operator=(const Execution&) = delete;

  /// Returns how many PayloadChunk messages are still expected.
  uint32_t chunks_left() const { return chunks_left_; }
  /// Tells whether Load succeeded (InitResponse was sent).
  bool loaded() const { return result_schema_ != nullptr; }

  /// Appends a PayloadChunk to its UDF's payload.
  arrow::Status AddPayloadChunk(const v1::PayloadChunk& chunk);

  /// Checks the Init, binds every UDF, runs the setups; returns the encapsulated
  /// result schema message for InitResponse.
  arrow::Result<std::string> Load();

  /// Decodes one Data body, runs every UDF over it and returns the result batch.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Run(
      std::shared_ptr<arrow::io::InputStream> body);

  /// Checks a batch a transport decoded itself against the input schema: the
  /// same column types, valid Arrow data (a ProtocolError otherwise).
  arrow::Status CheckBatch(const arrow::RecordBatch& batch) const;

  /// Runs every UDF over a batch CheckBatch accepted; returns the result batch.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> RunDecoded(const arrow::RecordBatch& batch);

  /// Adds the time a transport spent decoding or encoding batches to codec_nanos.
  void AddCodecNanos(uint64_t nanos) { counters_.codec_nanos += nanos; }

  /// Runs the teardowns now (once); their failures are logged, not reported.
  void Close();

  /// Returns this execution's metrics (peak_rss_bytes: the process's, so far).
  v1::Metrics metrics() const;

 private:
  struct BoundUdf {
    std::string name;
    std::vector<int> offsets;
    std::shared_ptr<arrow::DataType> result_type;
    const ScalarUdf* udf = nullptr;
    bool set_up = false;
  };

  arrow::Status CheckInit() const;
  arrow::Result<BoundUdf> Bind(int index) const;
  arrow::Status SetUp();
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Decode(
      std::shared_ptr<arrow::io::InputStream> body);
  arrow::Result<std::shared_ptr<arrow::Array>> Call(const BoundUdf& bound,
                                                    const arrow::RecordBatch& batch);
  arrow::Status CheckResult(const BoundUdf& bound, const std::shared_ptr<arrow::Array>& result,
                            int64_t rows) const;

  const Registry* registry_;
  v1::Init init_;
  uint32_t chunks_left_;
  std::shared_ptr<arrow::Schema> input_schema_;
  std::shared_ptr<arrow::Schema> result_schema_;
  std::vector<BoundUdf> udfs_;
  struct Counters {
    uint64_t batches = 0;
    uint64_t rows_in = 0;
    uint64_t rows_out = 0;
    uint64_t udf_nanos = 0;
    uint64_t codec_nanos = 0;
  };
  Counters counters_;
  // The UDFs' own counters (counter.h) when the execution began: it reports what they grew by.
  std::map<std::string, uint64_t> user_counters_before_;
};

}  // namespace quiver::sdk
