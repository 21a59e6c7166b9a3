// Fuzzes the gRPC transport's hand-written parser of WorkerMessage envelopes
// (transport/grpc/grpc_message_codec.h): the protobuf tags and varints around
// a Data message's Arrow bytes, read across the slices the message arrived in,
// then the batch decoder and the result validation behind it. The first byte
// picks how the message is cut into slices.

#include <cstddef>
#include <cstdint>
#include <vector>

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include "fuzz/fuzz_input.h"
#include "quiver/protocol/result_validation.h"
#include "quiver/transport/grpc/grpc_message_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::vector<grpc::Slice> slices;
  for (const auto& chunk : quiver::fuzz::SplitIntoChunks(data + 1, size - 1, data[0])) {
    slices.emplace_back(chunk->data(), static_cast<size_t>(chunk->size()));
  }
  grpc::ByteBuffer message(slices.data(), slices.size());
  quiver::transport::grpc_transport::DecodeCopies copies;
  auto reply = quiver::transport::grpc_transport::DecodeWorkerMessage(message, &copies);
  if (reply.ok() && reply->batch != nullptr) {
    (void)quiver::protocol::ValidateResultBatch(*reply->batch);
  }
  return 0;
}
