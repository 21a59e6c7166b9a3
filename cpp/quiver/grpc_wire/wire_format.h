#pragma once

// The pieces of protobuf wire format that quiver writes and reads by hand so
// that Arrow bytes are never copied into or out of a protobuf string: varints,
// and messages whose Arrow buffers travel as grpc::Slices referencing them.
// Shared by the gRPC Data envelope (quiver.v1) and Spark's dialect, in the SDK
// and in the engine's transports.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/buffer.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

namespace quiver::grpc_wire {

/// The longest varint protobuf writes (a 64-bit value).
constexpr size_t kMaxVarintSize = 10;

/// Bytes of `value` as a minimal varint.
size_t VarintSize(uint64_t value);

/// Appends `value` as a minimal varint.
void AppendVarint(uint64_t value, std::string* out);

/// Appends `value` as a varint of exactly `size` bytes (at least its minimal
/// size): protobuf accepts redundant continuation bytes.
void AppendVarint(uint64_t value, size_t size, std::string* out);

/// A grpc::Slice over the buffer's bytes that keeps the buffer alive for as
/// long as gRPC needs it.
grpc::Slice SliceOf(const std::shared_ptr<arrow::Buffer>& buffer);

/// An Arrow buffer over `length` bytes at `offset` of a received slice, holding
/// a reference to the slice (no copy).
std::shared_ptr<arrow::Buffer> BufferOfSlice(grpc::Slice slice, size_t offset, size_t length);

/// A message of the bytes of `prefix` followed by those of `body`, whose
/// buffers are referenced, not copied.
grpc::ByteBuffer MessageOf(const std::string& prefix,
                           const std::vector<std::shared_ptr<arrow::Buffer>>& body);

}  // namespace quiver::grpc_wire
