#pragma once

// quiver.v1 messages as gRPC byte buffers, without copying Arrow data.
//
// A Data message is written by hand in protobuf wire format: a few bytes of
// field tags and lengths, then one grpc::Slice per Arrow buffer that holds a
// reference to the buffer. Received Data messages are parsed the same way: the
// Arrow IPC bytes are handed to a ChunkedInputStream as the slices they arrived
// in, and the batch is read from it.

#include <cstdint>
#include <memory>

#include <grpcpp/support/byte_buffer.h>

#include <arrow/record_batch.h>
#include <arrow/result.h>

#include "quiver/transport/connection.h"
#include "quiver/v1/quiver.pb.h"

namespace quiver::transport::grpc_transport {

/// Serializes a control message.
arrow::Result<grpc::ByteBuffer> EncodeEngineMessage(const v1::EngineMessage& message);

/// Serializes EngineMessage{data{sequence, arrow_ipc}} with the batch's buffers
/// referenced, not copied.
arrow::Result<grpc::ByteBuffer> EncodeDataMessage(uint64_t sequence,
                                                  const arrow::RecordBatch& batch);

/// Counts what decoding had to copy, for the transport's report.
struct DecodeCopies {
  int64_t messages = 0;
  int64_t bytes_received = 0;
  int64_t bytes_copied = 0;
};

/// Parses a WorkerMessage; a Data message becomes a WorkerReply with its batch.
arrow::Result<WorkerReply> DecodeWorkerMessage(const grpc::ByteBuffer& buffer,
                                               DecodeCopies* copies);

}  // namespace quiver::transport::grpc_transport
