#pragma once

// The Data envelope of the gRPC transport (docs/protocol.md, section 5):
// EngineMessage{data = 3} and WorkerMessage{data = 3} share the field number, so
// one codec serves both directions. A Data message is written by hand: a few
// bytes of tags and lengths, then one grpc::Slice per Arrow buffer holding a
// reference to it. Received envelopes are read from the slices they arrived in.

#include <cstdint>
#include <memory>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

namespace quiver::grpc_wire {

/// A received Data message: its sequence number and its Arrow IPC stream as
/// buffers over the received slices (no copy).
struct DataEnvelope {
  uint64_t sequence = 0;
  std::vector<std::shared_ptr<arrow::Buffer>> arrow_ipc;
};

/// Serializes {data{sequence, arrow_ipc}} with the batch's buffers referenced,
/// not copied. The sequence varint is padded so that the Arrow bytes start at a
/// multiple of 8 into the message and the receiver can read them in place.
arrow::Result<grpc::ByteBuffer> EncodeDataEnvelope(uint64_t sequence,
                                                   const arrow::RecordBatch& batch);

/// Whether the message's first field is `data` (the only field that is not
/// parsed with protobuf).
bool IsDataEnvelope(const std::vector<grpc::Slice>& slices);

/// Parses a message whose first field is `data`. Any valid protobuf encoding is
/// accepted: padded or minimal varints, Data's fields in any order, unknown
/// fields skipped, the last occurrence of a field winning. Fails with a
/// description when the bytes are not such a message.
arrow::Result<DataEnvelope> DecodeDataEnvelope(std::vector<grpc::Slice> slices);

}  // namespace quiver::grpc_wire
