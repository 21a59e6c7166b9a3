#include "quiver/sdk/grpc_endpoint.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

namespace quiver::sdk {
namespace {

constexpr char kUnixScheme[] = "grpc+unix:";
constexpr char kTcpScheme[] = "grpc+tcp:";

bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || StartsWith(host, "127.");
}

arrow::Result<GrpcEndpoint> ParseTcp(const std::string& endpoint, std::string rest) {
  if (StartsWith(rest, "//")) rest = rest.substr(2);
  const size_t colon = rest.rfind(':');
  const std::string port = colon == std::string::npos ? "" : rest.substr(colon + 1);
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos ||
      port.size() > 5 || std::atoi(port.c_str()) > 65535) {
    return arrow::Status::Invalid("endpoint '", endpoint,
                                  "' has no valid port: write grpc+tcp:HOST:PORT "
                                  "(grpc+tcp::PORT listens on 127.0.0.1)");
  }
  std::string host = rest.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "127.0.0.1";
  GrpcEndpoint parsed;
  parsed.tcp = true;
  parsed.local = IsLoopback(host);
  parsed.address = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
  return parsed;
}

arrow::Result<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return arrow::Status::IOError("cannot read ", path);
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

}  // namespace

arrow::Result<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const WorkerOptions& options, bool local) {
  if (options.tls_cert_file.empty()) {
    if (!local) {
      return arrow::Status::Invalid("endpoint ", options.connection,
                                    " is not a loopback address: serve it with --tls-cert and "
                                    "--tls-key");
    }
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions ssl;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  ARROW_ASSIGN_OR_RAISE(pair.private_key, ReadFile(options.tls_key_file));
  ARROW_ASSIGN_OR_RAISE(pair.cert_chain, ReadFile(options.tls_cert_file));
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  return grpc::SslServerCredentials(ssl);
}

arrow::Result<GrpcEndpoint> ParseGrpcEndpoint(const std::string& endpoint) {
  if (StartsWith(endpoint, kUnixScheme)) {
    std::string path = endpoint.substr(sizeof(kUnixScheme) - 1);
    if (StartsWith(path, "//")) path = path.substr(2);
    if (path.empty()) return arrow::Status::Invalid("endpoint '", endpoint, "' names no socket");
    return GrpcEndpoint{"unix:" + path, true, false};
  }
  if (StartsWith(endpoint, kTcpScheme)) {
    return ParseTcp(endpoint, endpoint.substr(sizeof(kTcpScheme) - 1));
  }
  return arrow::Status::Invalid("unsupported endpoint '", endpoint,
                                "': the grpc transport listens on grpc+unix:/path/to/socket or "
                                "grpc+tcp:HOST:PORT");
}

void AnnounceServing(const WorkerOptions& options, const char* what) {
  std::fprintf(stderr, "quiver-worker[%s] serving %s on %s\n", options.id.c_str(), what,
               options.connection.c_str());
  std::fflush(stderr);
}

}  // namespace quiver::sdk
