#include "quiver/sdk/spark_endpoint.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "quiver/sdk/grpc_endpoint.h"

namespace quiver::sdk {
namespace {

constexpr char kUnixPrefix[] = "unix:";

}  // namespace

arrow::Result<SparkEndpoint> ParseSparkConnection(const std::string& connection,
                                                  bool ipv6_loopback) {
  if (connection.empty()) {
    return arrow::Status::Invalid("--connection is empty: give a socket path or a port");
  }
  SparkEndpoint endpoint;
  if (connection.find_first_not_of("0123456789") == std::string::npos) {
    const long port = connection.size() <= 5 ? std::stol(connection) : 0;
    if (port < 1 || port > 65535) {
      return arrow::Status::Invalid("--connection ", connection, ": a port is 1 to 65535");
    }
    endpoint.addresses.push_back("127.0.0.1:" + connection);
    if (ipv6_loopback) endpoint.addresses.push_back("[::1]:" + connection);
    return endpoint;
  }
  if (connection.rfind("grpc+", 0) == 0) {
    ARROW_ASSIGN_OR_RAISE(GrpcEndpoint grpc, ParseGrpcEndpoint(connection));
    if (grpc.address.rfind(kUnixPrefix, 0) == 0) {
      endpoint.socket_path = grpc.address.substr(sizeof(kUnixPrefix) - 1);
    }
    endpoint.addresses.push_back(grpc.address);
    endpoint.local = grpc.local;
    return endpoint;
  }
  endpoint.socket_path = connection;
  endpoint.addresses.push_back(kUnixPrefix + connection);
  return endpoint;
}

bool HasIpv6Loopback() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_addr = in6addr_loopback;
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return bound;
}

}  // namespace quiver::sdk
