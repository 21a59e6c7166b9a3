#include "quiver/sdk/grpc_codec.h"

#include <memory>
#include <utility>
#include <vector>

#include "quiver/grpc_wire/data_envelope.h"
#include "quiver/io/chunked_input_stream.h"

namespace quiver::sdk {

arrow::Result<EngineRequest> DecodeEngineRequest(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return arrow::Status::IOError("cannot read a gRPC message");
  if (grpc_wire::IsDataEnvelope(slices)) {
    auto envelope = grpc_wire::DecodeDataEnvelope(std::move(slices));
    if (!envelope.ok()) {
      return arrow::Status::Invalid("a Data message does not decode: ",
                                    envelope.status().message());
    }
    auto stream = std::make_shared<io::ChunkedInputStream>();
    for (auto& piece : envelope->arrow_ipc) ARROW_RETURN_NOT_OK(stream->Append(std::move(piece)));
    stream->Finish();
    EngineRequest request;
    request.sequence = envelope->sequence;
    request.body = std::move(stream);
    return request;
  }
  grpc::Slice whole;
  if (!buffer.DumpToSingleSlice(&whole).ok()) {
    return arrow::Status::IOError("cannot read a gRPC message");
  }
  EngineRequest request;
  request.control.emplace();
  if (!request.control->ParseFromArray(whole.begin(), static_cast<int>(whole.size()))) {
    return arrow::Status::Invalid("a request is not a quiver.v1.EngineMessage");
  }
  return request;
}

grpc::ByteBuffer EncodeWorkerControl(const v1::WorkerMessage& message) {
  grpc::Slice slice(message.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

arrow::Result<grpc::ByteBuffer> EncodeWorkerData(uint64_t sequence,
                                                 const arrow::RecordBatch& batch) {
  return grpc_wire::EncodeDataEnvelope(sequence, batch);
}

}  // namespace quiver::sdk
