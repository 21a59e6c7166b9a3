#include "quiver/io/loopback_port.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include "quiver/io/unique_fd.h"

namespace quiver::io {

arrow::Result<int> FreeLoopbackPort() {
  UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (!probe.valid() || ::bind(probe.get(), reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return arrow::Status::IOError("cannot find a free loopback TCP port");
  }
  return static_cast<int>(ntohs(address.sin_port));
}

}  // namespace quiver::io
