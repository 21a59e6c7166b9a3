#include "quiver/transport/grpc/grpc_message_codec.h"

#include <string>
#include <utility>
#include <vector>

#include <arrow/buffer.h>

#include "quiver/grpc_wire/data_envelope.h"
#include "quiver/io/chunked_input_stream.h"
#include "quiver/protocol/batch_codec.h"
#include "quiver/protocol/udf_error.h"

namespace quiver::transport::grpc_transport {
namespace {

arrow::Result<WorkerReply> DecodeBatch(const std::vector<std::shared_ptr<arrow::Buffer>>& ipc,
                                       uint64_t sequence, DecodeCopies* copies) {
  auto stream = std::make_shared<io::ChunkedInputStream>();
  for (const auto& piece : ipc) ARROW_RETURN_NOT_OK(stream->Append(piece));
  stream->Finish();
  auto batch = protocol::DecodeBatchStream(stream);
  if (!batch.ok()) {
    return AsProtocolViolation(
        stream->ExplainFailure(batch.status())
            .WithMessage("the worker sent a result for batch ", sequence,
                         " that is not a valid Arrow IPC stream: ", batch.status().message()));
  }
  copies->bytes_copied += stream->bytes_copied();
  WorkerReply reply;
  reply.sequence = sequence;
  reply.batch = std::move(batch).ValueUnsafe();
  return reply;
}

}  // namespace

arrow::Result<grpc::ByteBuffer> EncodeEngineMessage(const v1::EngineMessage& message) {
  std::string bytes = message.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

arrow::Result<grpc::ByteBuffer> EncodeDataMessage(uint64_t sequence,
                                                  const arrow::RecordBatch& batch) {
  return grpc_wire::EncodeDataEnvelope(sequence, batch);
}

arrow::Result<WorkerReply> DecodeWorkerMessage(const grpc::ByteBuffer& buffer,
                                               DecodeCopies* copies) {
  copies->messages += 1;
  copies->bytes_received += static_cast<int64_t>(buffer.Length());
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return arrow::Status::IOError("cannot read a gRPC message");
  if (grpc_wire::IsDataEnvelope(slices)) {
    auto envelope = grpc_wire::DecodeDataEnvelope(std::move(slices));
    if (!envelope.ok()) {
      return arrow::Status::IOError("the worker sent a Data message that does not decode: ",
                                    envelope.status().message());
    }
    return DecodeBatch(envelope->arrow_ipc, envelope->sequence, copies);
  }
  grpc::Slice whole;
  if (!buffer.DumpToSingleSlice(&whole).ok()) {
    return arrow::Status::IOError("cannot read a gRPC message");
  }
  copies->bytes_copied += static_cast<int64_t>(slices.size() > 1 ? whole.size() : 0);
  WorkerReply reply;
  reply.control.emplace();
  if (!reply.control->ParseFromArray(whole.begin(), static_cast<int>(whole.size()))) {
    return arrow::Status::IOError(
        "the worker sent a message that is not a quiver.v1.WorkerMessage");
  }
  return reply;
}

}  // namespace quiver::transport::grpc_transport
