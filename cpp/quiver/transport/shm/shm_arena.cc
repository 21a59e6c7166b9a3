#include "quiver/transport/shm/shm_arena.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace quiver::transport::shm {
namespace {

arrow::Status Errno(const std::string& what) {
  return arrow::Status::IOError("shared memory: ", what, ": ", std::strerror(errno));
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

}  // namespace quiver::transport::shm
