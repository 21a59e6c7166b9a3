#pragma once

// The Data body of quiver.v1 (docs/protocol.md, section 3): one record batch as a
// self-contained Arrow IPC stream. Encoding references the batch's own buffers,
// so the bytes of a batch are never copied on their way to the socket.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/io/interfaces.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

namespace quiver::protocol {

/// The largest result a worker may send in one message: the 2 GiB frame body,
/// less 64 KiB for the message around the Arrow stream, so that it fits every
/// transport (gRPC's limit is 2^31 - 1 bytes for the whole message). A worker
/// answers a larger result with a WorkerError saying its size (docs/protocol.md,
/// section 4, "A result too large").
inline constexpr int64_t kMaxResultBytes = (int64_t{1} << 31) - (int64_t{1} << 16);

/// Returns the size of `batch` as an Arrow IPC message (metadata and body),
/// without encoding it.
arrow::Result<int64_t> EncodedBatchSize(const arrow::RecordBatch& batch);

/// Encodes `batch` as an Arrow IPC stream (schema, dictionaries, the batch,
/// end-of-stream). The returned buffers reference the batch's data buffers;
/// only message headers and padding are new memory. The bytes are those of
/// Arrow's stream writer; the schema message is serialized once per schema and
/// thread and referenced by later bodies (the last few schemas are kept).
arrow::Result<std::vector<std::shared_ptr<arrow::Buffer>>> EncodeBatchStream(
    const arrow::RecordBatch& batch);

/// Decodes a Data body holding exactly one record batch. The batch's buffers are
/// slices of `body` (no copy). A body that starts with the same schema message
/// bytes as one decoded before on this thread reuses that schema instead of
/// parsing it again (the last few schemas are kept); the result is the same.
arrow::Result<std::shared_ptr<arrow::RecordBatch>> DecodeBatchStream(
    std::shared_ptr<arrow::Buffer> body);

/// Decodes a Data body read from `stream`, which must hold exactly one record batch.
arrow::Result<std::shared_ptr<arrow::RecordBatch>> DecodeBatchStream(
    std::shared_ptr<arrow::io::InputStream> stream);

/// Serializes a schema as an Arrow IPC schema message (Init.input_schema,
/// UdfDefinition.return_type, InitResponse.result_schema).
arrow::Result<std::string> SerializeSchema(const arrow::Schema& schema);

/// Parses an Arrow IPC schema message.
arrow::Result<std::shared_ptr<arrow::Schema>> DeserializeSchema(std::string_view bytes);

}  // namespace quiver::protocol
