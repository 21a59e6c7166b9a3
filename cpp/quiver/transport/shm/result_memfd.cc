#include "quiver/transport/shm/result_memfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "quiver/transport/shm/shm_arena.h"

namespace quiver::transport::shm {
namespace {

constexpr int kRequiredSeals = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW;

arrow::Status Untrusted(const std::string& why) {
  return arrow::Status::IOError("the worker's result memfd ", why);
}

// Adds the seals (and F_SEAL_SEAL); a memfd the worker sealed itself already is as good.
arrow::Status Seal(int fd) {
  if (::fcntl(fd, F_ADD_SEALS, kRequiredSeals | F_SEAL_SEAL) == 0) return arrow::Status::OK();
  const int error = errno;
  if (error == EBUSY) {
    return Untrusted(
        "is still mapped writable (the kernel refuses to seal it against writing): a worker must "
        "unmap a result, or never map it writable, before handing it over");
  }
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) return Untrusted("is not a memfd (it cannot be sealed)");
  if ((seals & kRequiredSeals) == kRequiredSeals) return arrow::Status::OK();
  return Untrusted(std::string("cannot be sealed against writing (") + std::strerror(error) +
                   "): a result memfd must be created with MFD_ALLOW_SEALING and handed over "
                   "open for writing");
}

// Owns a read-only mapping of a sealed memfd; the view is a range of it.
class MappedResult : public arrow::Buffer {
 public:
  MappedResult(void* mapping, size_t mapped, int64_t offset, int64_t length)
      : arrow::Buffer(static_cast<const uint8_t*>(mapping) + offset, length),
        mapping_(mapping),
        mapped_(mapped) {}
  ~MappedResult() override { ::munmap(mapping_, mapped_); }

 private:
  void* mapping_;
  size_t mapped_;
};

arrow::Result<std::shared_ptr<arrow::Buffer>> Copy(int fd, int64_t offset, int64_t length) {
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::ResizableBuffer> buffer,
                        arrow::AllocateResizableBuffer(length));
  int64_t done = 0;
  while (done < length) {
    const ssize_t got = ::pread(fd, buffer->mutable_data() + done,
                                static_cast<size_t>(length - done), offset + done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      return Untrusted(std::string("cannot be read (") +
                       (got < 0 ? std::strerror(errno) : "end of file") + ")");
    }
    done += got;
  }
  return buffer;
}

arrow::Result<std::shared_ptr<arrow::Buffer>> Map(int fd, int64_t size, int64_t offset,
                                                  int64_t length) {
  const auto mapped = static_cast<size_t>(size);
  void* mapping = ::mmap(nullptr, mapped, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (mapping == MAP_FAILED) {
    return Untrusted(std::string("cannot be mapped (") + std::strerror(errno) + ")");
  }
  return std::make_shared<MappedResult>(mapping, mapped, offset, length);
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::Buffer>> TakeSealedResult(io::UniqueFd memfd, uint64_t offset,
                                                               uint64_t length) {
  ARROW_RETURN_NOT_OK(Seal(memfd.get()));
  struct stat status {};
  if (::fstat(memfd.get(), &status) != 0) {
    return Untrusted(std::string("cannot be inspected (") + std::strerror(errno) + ")");
  }
  const int64_t size = status.st_size;  // sealed: it stays so
  if (!RegionFits(offset, length, size)) {
    return Untrusted("has " + std::to_string(size) + " bytes: the region lies outside it");
  }
  const auto start = static_cast<int64_t>(offset);
  const auto bytes = static_cast<int64_t>(length);
  if (bytes <= kCopyResultsUpTo) return Copy(memfd.get(), start, bytes);
  return Map(memfd.get(), size, start, bytes);
}

}  // namespace quiver::transport::shm
