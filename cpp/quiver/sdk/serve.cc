#include "quiver/sdk/serve.h"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "quiver/sdk/command_line.h"
#include "quiver/sdk/grpc_server.h"
#include "quiver/sdk/log.h"
#include "quiver/sdk/spark_server.h"
#include "quiver/sdk/uds_server.h"

namespace quiver::sdk {
namespace {

constexpr char kSecretVariable[] = "QUIVER_WORKER_SECRET";
constexpr char kSecretFdVariable[] = "QUIVER_WORKER_SECRET_FD";
constexpr char kShmOfferVariable[] = "QUIVER_SHM_CONNECTION";

// Reads the secret from the pipe descriptor `fd_text` names until its end, then closes it.
bool ReadSecretFd(const std::string& fd_text, std::string* secret) {
  char* end = nullptr;
  const long fd = std::strtol(fd_text.c_str(), &end, 10);
  if (fd_text.empty() || *end != '\0' || fd < 0) return false;
  char buffer[256];
  while (true) {
    const ssize_t got = ::read(static_cast<int>(fd), buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return false;
    if (got == 0) break;
    secret->append(buffer, static_cast<size_t>(got));
  }
  ::close(static_cast<int>(fd));
  return true;
}

// Takes the secret from the pipe QUIVER_WORKER_SECRET_FD names (engines that
// start workers), else from QUIVER_WORKER_SECRET (workers started by hand), and
// removes both variables, so that UDFs and their children do not inherit them.
// Trailing whitespace (a newline from `echo` or a file) is not part of the
// secret; an empty secret is refused.
bool TakeSecret(std::string* secret) {
  const char* fd_value = std::getenv(kSecretFdVariable);
  const char* value = std::getenv(kSecretVariable);
  const std::string fd_text = fd_value != nullptr ? fd_value : "";
  if (value != nullptr) *secret = value;
  ::unsetenv(kSecretFdVariable);
  ::unsetenv(kSecretVariable);
  if (fd_value != nullptr) {
    secret->clear();
    if (!ReadSecretFd(fd_text, secret)) return false;
  } else if (value == nullptr) {
    return false;
  }
  while (!secret->empty() && std::isspace(static_cast<unsigned char>(secret->back()))) {
    secret->pop_back();
  }
  return !secret->empty();
}

// Takes the shm endpoint the engine offers beside a unix: one (docs/protocol.md,
// section 10): this worker speaks shm, so it connects there. The variable is
// removed either way, so that UDFs and their children do not inherit it.
void TakeShmOffer(WorkerOptions* options) {
  const char* offer = std::getenv(kShmOfferVariable);
  const std::string endpoint = offer != nullptr ? offer : "";
  ::unsetenv(kShmOfferVariable);
  if (options->transport == "uds" && options->connection.rfind("unix:", 0) == 0 &&
      endpoint.rfind("shm:", 0) == 0) {
    Log(LogLevel::kDebug, "taking the shared memory the engine offers: " + endpoint);
    options->connection = endpoint;
  }
}

int UsageError(const std::string& program, const std::string& problem) {
  std::fprintf(stderr, "%s: %s\n%s", program.c_str(), problem.c_str(), Usage(program).c_str());
  return kExitUsage;
}

}  // namespace

int Serve(int argc, char** argv, const Registry& registry) {
  const std::string program = argc > 0 ? argv[0] : "worker";
  const std::vector<std::string> arguments(argv + (argc > 0 ? 1 : 0), argv + argc);
  for (const auto& argument : arguments) {
    if (argument == "--help" || argument == "-h") {
      std::fputs(Usage(program).c_str(), stdout);
      return kExitOk;
    }
  }
  if (!registry.status().ok()) {
    return UsageError(
        program, "the worker registered its functions wrongly: " + registry.status().message());
  }
  auto options = ParseCommandLine(arguments);
  if (!options.ok()) return UsageError(program, options.status().message());
  ConfigureLog(options->id, options->log_level);
  // The protocol owns the socket, not stdout: what UDFs print belongs in the worker log.
  std::fflush(stdout);
  ::dup2(STDERR_FILENO, STDOUT_FILENO);
  // Spark's protocol carries no secret: access is the transport's (docs/spark-protocol.md §7).
  if (options->dialect == "spark") return ServeSpark(*options, registry);
  std::string secret;
  if (!TakeSecret(&secret)) {
    Log(LogLevel::kError, std::string("cannot read the worker's secret: neither ") +
                              kSecretFdVariable + " (a readable pipe) nor " + kSecretVariable +
                              " is set, or the secret is empty");
    return kExitUsage;
  }
  if (options->transport == "grpc") return ServeGrpc(*options, secret, registry);
  TakeShmOffer(&*options);
  return ServeUds(*options, secret, registry);
}

}  // namespace quiver::sdk
