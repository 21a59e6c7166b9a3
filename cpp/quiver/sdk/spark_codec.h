#pragma once

// The messages of an Execute stream in Spark's dialect (docs/spark-protocol.md,
// sections 2-3) as gRPC byte buffers, worker side. Batches are written and read
// by hand so that Arrow bytes are neither copied into nor out of a protobuf
// string: UdfResponse{data{data}} leaves as a few bytes of tags and lengths and
// one grpc::Slice per Arrow buffer, and UdfRequest{data{data}} is read from the
// slices it arrived in. Control messages go through protobuf.

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <grpcpp/support/byte_buffer.h>

#include "udf_message.pb.h"

namespace quiver::sdk {

namespace sparkpb = ::org::apache::spark::udf::worker;

/// One request of an Execute stream.
struct SparkRequest {
  /// Set for a control message (Init, PayloadChunk, Finish, Cancel).
  std::optional<sparkpb::UdfControlRequest> control;
  /// DataRequest.data, as buffers over the received slices (no copy).
  std::vector<std::shared_ptr<arrow::Buffer>> data;
  /// The bytes of DataRequest.data.
  uint64_t data_size = 0;
};

/// Parses a UdfRequest; any valid protobuf encoding of it is accepted. Fails
/// with a description when the bytes are not a UdfRequest or it holds neither
/// control nor data.
arrow::Result<SparkRequest> DecodeSparkRequest(const grpc::ByteBuffer& buffer);

/// Serializes UdfResponse{control}.
grpc::ByteBuffer EncodeSparkControl(const sparkpb::UdfControlResponse& control);

/// Serializes UdfResponse{data{data = the IPC stream of `batch`}} with the
/// batch's buffers referenced, not copied; `ipc_bytes` gets the stream's size.
arrow::Result<grpc::ByteBuffer> EncodeSparkData(const arrow::RecordBatch& batch,
                                                uint64_t* ipc_bytes);

/// Reads the record batches of DataRequest.data, in order: an Arrow IPC stream
/// of one or more batches (dictionaries allowed, end-of-stream marker optional),
/// or a bare encapsulated record-batch message, read against `input_schema`
/// (the encapsulated schema message of Init.input_schema). Fails with a
/// description when the bytes are neither, or hold no record batch.
arrow::Result<std::vector<std::shared_ptr<arrow::RecordBatch>>> DecodeSparkBatches(
    const std::vector<std::shared_ptr<arrow::Buffer>>& data,
    const std::shared_ptr<arrow::Buffer>& input_schema);

}  // namespace quiver::sdk
