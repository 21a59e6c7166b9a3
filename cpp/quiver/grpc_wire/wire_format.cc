#include "quiver/grpc_wire/wire_format.h"

#include <utility>

namespace quiver::grpc_wire {
namespace {

// Holds the slice of a SliceBuffer; a base class, so it is built before the
// Buffer that points into it.
struct SliceHolder {
  grpc::Slice held;
};

// An Arrow buffer over part of a received grpc::Slice, holding a reference to it.
// Small slices keep their bytes inline, so the data pointer must come from the
// slice this object owns, not from the one it was copied from.
class SliceBuffer : private SliceHolder, public arrow::Buffer {
 public:
  SliceBuffer(grpc::Slice slice, size_t offset, size_t length)
      : SliceHolder{std::move(slice)},
        arrow::Buffer(held.begin() + offset, static_cast<int64_t>(length)) {}
};

}  // namespace

size_t VarintSize(uint64_t value) {
  size_t size = 1;
  for (; value >= 0x80; value >>= 7) ++size;
  return size;
}

void AppendVarint(uint64_t value, std::string* out) { AppendVarint(value, VarintSize(value), out); }

void AppendVarint(uint64_t value, size_t size, std::string* out) {
  for (size_t i = 0; i + 1 < size; ++i, value >>= 7) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
  }
  out->push_back(static_cast<char>(value & 0x7f));
}

grpc::Slice SliceOf(const std::shared_ptr<arrow::Buffer>& buffer) {
  auto* owner = new std::shared_ptr<arrow::Buffer>(buffer);
  return grpc::Slice(
      const_cast<uint8_t*>(buffer->data()), static_cast<size_t>(buffer->size()),
      [](void* user_data) { delete static_cast<std::shared_ptr<arrow::Buffer>*>(user_data); },
      owner);
}

std::shared_ptr<arrow::Buffer> BufferOfSlice(grpc::Slice slice, size_t offset, size_t length) {
  return std::make_shared<SliceBuffer>(std::move(slice), offset, length);
}

grpc::ByteBuffer MessageOf(const std::string& prefix,
                           const std::vector<std::shared_ptr<arrow::Buffer>>& body) {
  std::vector<grpc::Slice> slices;
  slices.reserve(body.size() + 1);
  slices.emplace_back(prefix);
  for (const auto& buffer : body) {
    if (buffer->size() > 0) slices.push_back(SliceOf(buffer));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

}  // namespace quiver::grpc_wire
