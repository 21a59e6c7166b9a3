#include "quiver/transport/shm/shm_arena.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <utility>

namespace quiver::transport::shm {
namespace {

arrow::Status Errno(const std::string& what) {
  return arrow::Status::IOError("shared memory: ", what, ": ", std::strerror(errno));
}

int64_t RoundUp(int64_t length) {
  return (length + kRegionAlignment - 1) / kRegionAlignment * kRegionAlignment;
}

}  // namespace

arrow::Result<std::shared_ptr<SharedArena>> SharedArena::Create(const std::string& name,
                                                                int64_t bytes, bool writable_here,
                                                                bool seal_future_writes) {
  if (bytes <= 0) return arrow::Status::Invalid("shared memory: an arena needs a positive size");
  io::UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return Errno("memfd_create");
  if (::ftruncate(fd.get(), bytes) != 0) return Errno("ftruncate to " + std::to_string(bytes));
  const int protection = writable_here ? PROT_READ | PROT_WRITE : PROT_READ;
  void* data = ::mmap(nullptr, static_cast<size_t>(bytes), protection, MAP_SHARED, fd.get(), 0);
  if (data == MAP_FAILED) return Errno("mmap of " + std::to_string(bytes) + " bytes");
  auto arena = std::shared_ptr<SharedArena>(
      new SharedArena(std::move(fd), static_cast<uint8_t*>(data), bytes));
  // After this, no process can resize the arena, and (input arena) no new
  // mapping of it can be writable: only this process's mapping writes it.
  int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
  if (seal_future_writes) seals |= F_SEAL_FUTURE_WRITE;
  if (::fcntl(arena->fd(), F_ADD_SEALS, seals) != 0) return Errno("sealing the memfd");
  return arena;
}

SharedArena::~SharedArena() { ::munmap(data_, static_cast<size_t>(size_)); }

RegionAllocator::RegionAllocator(int64_t size) {
  const int64_t usable = size / kRegionAlignment * kRegionAlignment;
  if (usable > 0) free_.emplace(0, usable);
}

std::optional<int64_t> RegionAllocator::Allocate(int64_t length) {
  const int64_t wanted = RoundUp(length > 0 ? length : 1);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < wanted) continue;
    const int64_t offset = it->first;
    const int64_t rest = it->second - wanted;
    free_.erase(it);
    if (rest > 0) free_.emplace(offset + wanted, rest);
    used_.emplace(offset, wanted);
    allocated_bytes_ += wanted;
    return offset;
  }
  return std::nullopt;
}

bool RegionAllocator::Free(int64_t offset) {
  auto used = used_.find(offset);
  if (used == used_.end()) return false;
  int64_t start = offset;
  int64_t length = used->second;
  allocated_bytes_ -= length;
  used_.erase(used);
  auto next = free_.lower_bound(start);
  if (next != free_.end() && next->first == start + length) {
    length += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto previous = std::prev(next);
    if (previous->first + previous->second == start) {
      start = previous->first;
      length += previous->second;
      free_.erase(previous);
    }
  }
  free_.emplace(start, length);
  return true;
}

bool RegionFits(uint64_t offset, uint64_t length, int64_t size) {
  const auto limit = static_cast<uint64_t>(size);
  return offset <= limit && length <= limit - offset;
}

}  // namespace quiver::transport::shm
