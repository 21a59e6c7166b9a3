#include "quiver/io/unix_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>

namespace quiver::io {
namespace {

arrow::Status Errno(const std::string& what) {
  return arrow::Status::IOError(what, ": ", std::strerror(errno));
}

arrow::Result<sockaddr_un> Address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    return arrow::Status::Invalid("socket path is ", path.size(), " bytes, over the limit of ",
                                  sizeof(address.sun_path) - 1, ": ", path);
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

// Milliseconds until `deadline` for poll(): -1 for none, at least 0. Rounded
// up, so that a poll that times out returns at the deadline, never before it.
int PollTimeout(Deadline deadline) {
  if (deadline == kNoDeadline) return -1;
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, INT_MAX));
}

// Waits until `fd` is ready for `events`; false when the deadline passed first.
arrow::Result<bool> WaitFor(int fd, short events, Deadline deadline) {
  while (true) {
    pollfd entry{fd, events, 0};
    const int ready = ::poll(&entry, 1, PollTimeout(deadline));
    if (ready > 0) return true;
    if (ready == 0) return false;
    if (errno != EINTR) return Errno("poll");
  }
}

}  // namespace

void UniqueFd::Reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

arrow::Result<UniqueFd> ListenUnixSocket(const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(sockaddr_un address, Address(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Errno("socket");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return Errno("bind " + path);
  }
  if (::listen(fd.get(), 8) != 0) return Errno("listen " + path);
  return fd;
}

arrow::Result<std::optional<UniqueFd>> AcceptUnixSocket(const UniqueFd& listener,
                                                        Deadline deadline) {
  ARROW_ASSIGN_OR_RAISE(bool ready, WaitFor(listener.get(), POLLIN, deadline));
  if (!ready) return std::nullopt;
  UniqueFd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd.valid()) return Errno("accept");
  return std::optional<UniqueFd>(std::move(fd));
}

arrow::Result<UniqueFd> ConnectUnixSocket(const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(sockaddr_un address, Address(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Errno("socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return Errno("connect " + path);
  }
  return fd;
}

arrow::Status SendAll(int fd, const std::vector<std::shared_ptr<arrow::Buffer>>& buffers,
                      Deadline deadline) {
  std::vector<iovec> pieces;
  pieces.reserve(buffers.size());
  for (const auto& buffer : buffers) {
    if (buffer->size() > 0) {
      pieces.push_back({const_cast<uint8_t*>(buffer->data()), static_cast<size_t>(buffer->size())});
    }
  }
  size_t first = 0;
  while (first < pieces.size()) {
    msghdr message{};
    message.msg_iov = pieces.data() + first;
    message.msg_iovlen = std::min<size_t>(pieces.size() - first, IOV_MAX);
    const ssize_t sent = ::sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return Errno("send to worker");
      ARROW_ASSIGN_OR_RAISE(bool writable, WaitFor(fd, POLLOUT, deadline));
      if (!writable)
        return arrow::Status::IOError("send to worker timed out: the peer stopped reading");
      continue;
    }
    // Skip the pieces sent whole, then trim the one sent in part.
    size_t left = static_cast<size_t>(sent);
    while (first < pieces.size() && left >= pieces[first].iov_len) left -= pieces[first++].iov_len;
    if (left > 0) {
      pieces[first].iov_base = static_cast<uint8_t*>(pieces[first].iov_base) + left;
      pieces[first].iov_len -= left;
    }
  }
  return arrow::Status::OK();
}

arrow::Result<int64_t> ReceiveAll(int fd, uint8_t* out, int64_t length, Deadline deadline) {
  // Without a deadline one blocking call waits for all the bytes: no poll, and
  // no wake-up per piece the sender wrote. Shutting the socket down ends it.
  const int flags = deadline == kNoDeadline ? MSG_WAITALL : MSG_DONTWAIT;
  int64_t received = 0;
  while (received < length) {
    const ssize_t got = ::recv(fd, out + received, static_cast<size_t>(length - received), flags);
    if (got > 0) {
      received += got;
      continue;
    }
    if (got == 0) return received;  // the peer closed the connection
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) return received;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Errno("receive from worker");
    ARROW_ASSIGN_OR_RAISE(bool readable, WaitFor(fd, POLLIN, deadline));
    if (!readable) return arrow::Status::IOError("receive timed out");
  }
  return received;
}

}  // namespace quiver::io
