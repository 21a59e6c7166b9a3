#include "quiver/io/shared_memory.h"

#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iterator>
#include <string>

#include "quiver/io/unix_socket.h"

namespace quiver::io {
namespace {

arrow::Status Errno(const std::string& what) {
  return arrow::Status::IOError("shared memory: ", what, ": ", std::strerror(errno));
}

int64_t RoundUp(int64_t length) {
  return (length + kRegionAlignment - 1) / kRegionAlignment * kRegionAlignment;
}

// Room for the few descriptors one message may carry; more are a peer's mistake.
constexpr size_t kMaxDescriptors = 8;

}  // namespace

arrow::Result<std::unique_ptr<MemoryMapping>> MemoryMapping::Map(int fd, int64_t size,
                                                                 bool writable) {
  struct stat status {};
  if (::fstat(fd, &status) != 0) return Errno("fstat of a shared memory descriptor");
  if (size <= 0 || status.st_size < size) {
    return arrow::Status::IOError("shared memory: an arena of ", size,
                                  " bytes was announced, but its memfd has ", status.st_size);
  }
  const int protection = writable ? PROT_READ | PROT_WRITE : PROT_READ;
  void* data = ::mmap(nullptr, static_cast<size_t>(size), protection, MAP_SHARED, fd, 0);
  if (data == MAP_FAILED) return Errno("mmap of " + std::to_string(size) + " bytes");
  return std::unique_ptr<MemoryMapping>(new MemoryMapping(static_cast<uint8_t*>(data), size));
}

MemoryMapping::~MemoryMapping() { ::munmap(data_, static_cast<size_t>(size_)); }

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

arrow::Result<int64_t> ReceiveWithDescriptors(int socket, uint8_t* out, int64_t length,
                                              std::vector<UniqueFd>* descriptors) {
  int64_t received = 0;
  while (received < length) {
    iovec vector{out + received, static_cast<size_t>(length - received)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxDescriptors)];
    msghdr message{};
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    const ssize_t got = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && errno == ECONNRESET) return received;
    if (got < 0) return Errno("recvmsg");
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
         header = CMSG_NXTHDR(&message, header)) {
      if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
        descriptors->emplace_back(fd);
      }
    }
    if (got == 0) return received;  // the peer closed the connection
    received += got;
  }
  return received;
}

arrow::Status SendWithDescriptors(int socket,
                                  const std::vector<std::shared_ptr<arrow::Buffer>>& parts,
                                  const std::vector<int>& descriptors, Deadline deadline) {
  std::string bytes;
  for (const auto& part : parts)
    bytes.append(reinterpret_cast<const char*>(part->data()), part->size());
  std::vector<char> control(CMSG_SPACE(sizeof(int) * descriptors.size()));
  iovec vector{bytes.data(), bytes.size()};
  msghdr message{};
  message.msg_iov = &vector;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = control.size();
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int) * descriptors.size());
  std::memcpy(CMSG_DATA(header), descriptors.data(), sizeof(int) * descriptors.size());
  while (true) {
    const ssize_t sent = ::sendmsg(socket, &message, MSG_NOSIGNAL);
    if (sent >= 0) {
      if (static_cast<size_t>(sent) == bytes.size()) return arrow::Status::OK();
      // The descriptors went with the first byte; the rest is ordinary bytes.
      return SendAll(socket, {arrow::Buffer::FromString(bytes.substr(static_cast<size_t>(sent)))},
                     deadline);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return arrow::Status::IOError("sending the shared memory: ", std::strerror(errno));
    pollfd entry{socket, POLLOUT, 0};
    if (::poll(&entry, 1, 1000) < 0 && errno != EINTR)
      return arrow::Status::IOError("poll: ", std::strerror(errno));
    if (std::chrono::steady_clock::now() > deadline) {
      return arrow::Status::IOError("timed out sending the shared memory to the worker");
    }
  }
}

}  // namespace quiver::io
