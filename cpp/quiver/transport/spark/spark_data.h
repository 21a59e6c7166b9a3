#pragma once

// The data plane of Spark's dialect (docs/spark-protocol.md, section 3): a batch
// is one Arrow IPC stream in DataRequest.data / DataResponse.data.

#include <memory>
#include <string>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <grpcpp/support/byte_buffer.h>

namespace quiver::transport::spark {

/// Serializes UdfRequest{data{data = the IPC stream of `batch`}}, written by
/// hand so that the batch's buffers are referenced, not copied.
arrow::Result<grpc::ByteBuffer> EncodeDataRequest(const arrow::RecordBatch& batch);

/// Decodes DataResponse.data, which must be one Arrow IPC stream holding exactly
/// one record batch; the batch's buffers are slices of `data` (no copy).
arrow::Result<std::shared_ptr<arrow::RecordBatch>> DecodeDataResponse(std::string data);

}  // namespace quiver::transport::spark
