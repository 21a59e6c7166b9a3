#include "quiver/sdk/serve.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "quiver/sdk/command_line.h"
#include "quiver/sdk/grpc_server.h"
#include "quiver/sdk/log.h"
#include "quiver/sdk/uds_server.h"

namespace quiver::sdk {
namespace {

constexpr char kSecretVariable[] = "QUIVER_WORKER_SECRET";

// Takes the secret out of the environment, so that UDFs and their children do not inherit it.
bool TakeSecret(std::string* secret) {
  const char* value = std::getenv(kSecretVariable);
  if (value == nullptr) return false;
  *secret = value;
  ::unsetenv(kSecretVariable);
  return true;
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
  std::string secret;
  if (!TakeSecret(&secret)) {
    Log(LogLevel::kError,
        std::string(kSecretVariable) + " is not set; the engine passes the worker's secret in it");
    return kExitUsage;
  }
  if (options->transport == "grpc") return ServeGrpc(*options, secret, registry);
  return ServeUds(*options, secret, registry);
}

}  // namespace quiver::sdk
