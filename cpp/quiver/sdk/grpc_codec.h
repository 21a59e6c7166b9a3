#pragma once

// quiver.v1 messages of an Execute call as gRPC byte buffers, worker side
// (docs/protocol.md, section 5). Data envelopes are written and read by hand so
// that Arrow bytes are neither copied into nor out of a protobuf string: result
// batches leave as one grpc::Slice per Arrow buffer (the sequence varint padded
// so the Arrow bytes start 8-byte aligned), and received batches are read from
// the slices they arrived in.

#include <cstdint>
#include <memory>
#include <optional>

#include <grpcpp/support/byte_buffer.h>

#include <arrow/io/interfaces.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>

#include "quiver/v1/quiver.pb.h"

namespace quiver::sdk {

/// One request of an Execute call.
struct EngineRequest {
  /// Every message but Data.
  std::optional<v1::EngineMessage> control;
  /// Data: the batch's sequence number and its Arrow IPC stream as received.
  uint64_t sequence = 0;
  std::shared_ptr<arrow::io::InputStream> body;
};

/// Parses an EngineMessage; any valid protobuf encoding of it is accepted
/// (padded or minimal varints, fields of Data in any order). Fails with a
/// description when the bytes are not an EngineMessage.
arrow::Result<EngineRequest> DecodeEngineRequest(const grpc::ByteBuffer& buffer);

/// Serializes a control message.
grpc::ByteBuffer EncodeWorkerControl(const v1::WorkerMessage& message);

/// Serializes WorkerMessage{data{sequence, arrow_ipc}} with the batch's buffers
/// referenced, not copied.
arrow::Result<grpc::ByteBuffer> EncodeWorkerData(uint64_t sequence,
                                                 const arrow::RecordBatch& batch);

}  // namespace quiver::sdk
