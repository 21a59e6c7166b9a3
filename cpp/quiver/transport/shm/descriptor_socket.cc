#include "quiver/transport/shm/descriptor_socket.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace quiver::transport::shm {
namespace {

// More than a worker ever sends with one piece of a frame: an honest worker
// attaches one memfd per ShmData frame.
constexpr size_t kDescriptorsPerRead = 8;

void TakeDescriptors(msghdr& message, std::deque<io::UniqueFd>* descriptors) {
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
       header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
      descriptors->emplace_back(fd);
    }
  }
}

// Waits until the socket is readable or the deadline passed (false).
arrow::Result<bool> WaitReadable(int socket, io::Deadline deadline) {
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd entry{socket, POLLIN, 0};
    const int ready = ::poll(&entry, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) {
      return arrow::Status::IOError("poll: ", std::strerror(errno));
    }
  }
}

}  // namespace

arrow::Result<int64_t> ReceiveWithDescriptors(int socket, uint8_t* out, int64_t length,
                                              io::Deadline deadline,
                                              std::deque<io::UniqueFd>* descriptors) {
  // The kernel ends a read after bytes that carried descriptors, so MSG_WAITALL
  // still returns early then: the loop goes on for the rest.
  const int flags = (deadline == io::kNoDeadline ? MSG_WAITALL : MSG_DONTWAIT) | MSG_CMSG_CLOEXEC;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kDescriptorsPerRead)];
  int64_t received = 0;
  while (received < length) {
    iovec vector{out + received, static_cast<size_t>(length - received)};
    msghdr message{};
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    const ssize_t got = ::recvmsg(socket, &message, flags);
    if (got >= 0) TakeDescriptors(message, descriptors);
    if (got > 0) {
      if ((message.msg_flags & MSG_CTRUNC) != 0) {
        return arrow::Status::IOError("the worker attached more than ", kDescriptorsPerRead,
                                      " descriptors to one message");
      }
      received += got;
      continue;
    }
    if (got == 0) return received;  // the peer closed the connection
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) return received;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return arrow::Status::IOError("receive from worker: ", std::strerror(errno));
    }
    ARROW_ASSIGN_OR_RAISE(bool readable, WaitReadable(socket, deadline));
    if (!readable) return arrow::Status::IOError("receive timed out");
  }
  return received;
}

}  // namespace quiver::transport::shm
