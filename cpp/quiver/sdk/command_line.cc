#include "quiver/sdk/command_line.h"

#include <map>

namespace quiver::sdk {
namespace {

arrow::Result<LogLevel> ParseLogLevel(const std::string& text) {
  static const std::map<std::string, LogLevel> kLevels = {{"debug", LogLevel::kDebug},
                                                          {"info", LogLevel::kInfo},
                                                          {"warning", LogLevel::kWarning},
                                                          {"error", LogLevel::kError}};
  auto found = kLevels.find(text);
  if (found == kLevels.end()) {
    return arrow::Status::Invalid("--log-level is '", text, "'; use debug, info, warning or error");
  }
  return found->second;
}

arrow::Status Set(WorkerOptions* options, const std::string& flag, const std::string& value,
                  bool* transport_given) {
  if (flag == "--id") {
    options->id = value;
  } else if (flag == "--connection") {
    options->connection = value;
  } else if (flag == "--transport") {
    if (value != "uds" && value != "grpc") {
      return arrow::Status::Invalid("--transport is '", value, "'; use uds or grpc");
    }
    options->transport = value;
    *transport_given = true;
  } else if (flag == "--dialect") {
    if (value != "quiver" && value != "spark") {
      return arrow::Status::Invalid("--dialect is '", value, "'; use quiver or spark");
    }
    options->dialect = value;
  } else if (flag == "--tls-cert") {
    options->tls_cert_file = value;
  } else if (flag == "--tls-key") {
    options->tls_key_file = value;
  } else if (flag == "--log-level") {
    ARROW_ASSIGN_OR_RAISE(options->log_level, ParseLogLevel(value));
  } else {
    return arrow::Status::Invalid("unknown option '", flag, "'");
  }
  return arrow::Status::OK();
}

arrow::Status Check(const WorkerOptions& options) {
  if (options.id.empty()) return arrow::Status::Invalid("--id is required");
  if (options.connection.empty()) return arrow::Status::Invalid("--connection is required");
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return arrow::Status::Invalid("--tls-cert and --tls-key go together");
  }
  if (!options.tls_cert_file.empty() && options.transport != "grpc") {
    return arrow::Status::Invalid("--tls-cert and --tls-key are for --transport grpc");
  }
  return arrow::Status::OK();
}

}  // namespace

std::string Usage(const std::string& program) {
  return "usage: " + program +
         " --id ID --connection ENDPOINT [--transport uds|grpc] [--dialect quiver|spark]\n"
         "       [--tls-cert FILE --tls-key FILE] [--log-level debug|info|warning|error]\n"
         "Runs UDFs for a quiver engine, which starts this program (docs/protocol.md).\n"
         "  uds:  ENDPOINT is unix:/path/to/socket, where the engine listens, or\n"
         "        shm:/path/to/socket (the same, batches in shared memory)\n"
         "  grpc: ENDPOINT is grpc+unix:/path/to/socket or grpc+tcp:HOST:PORT to serve on\n"
         "The engine passes the worker's secret through the pipe descriptor that\n"
         "QUIVER_WORKER_SECRET_FD names, or (workers started by hand) in QUIVER_WORKER_SECRET.\n"
         "An engine that offers shared memory beside unix:PATH names it in\n"
         "QUIVER_SHM_CONNECTION=shm:PATH; this worker then connects there.\n"
         "--dialect spark serves Spark's UdfWorker (docs/spark-protocol.md) on ENDPOINT = the\n"
         "path of a Unix socket or a PORT on loopback (127.0.0.1 and ::1); no secret.\n";
}

arrow::Result<WorkerOptions> ParseCommandLine(const std::vector<std::string>& arguments) {
  WorkerOptions options;
  bool transport_given = false;
  for (size_t i = 0; i < arguments.size(); ++i) {
    std::string flag = arguments[i];
    std::string value;
    if (const size_t equals = flag.find('='); flag.rfind("--", 0) == 0 && equals != flag.npos) {
      value = flag.substr(equals + 1);
      flag.resize(equals);
    } else if (i + 1 < arguments.size()) {
      value = arguments[++i];
    } else {
      return arrow::Status::Invalid("option '", flag, "' needs a value");
    }
    ARROW_RETURN_NOT_OK(Set(&options, flag, value, &transport_given));
  }
  if (options.dialect == "spark") {
    // Spark's protocol is gRPC only; its endpoints are bare paths and ports.
    if (transport_given && options.transport != "grpc") {
      return arrow::Status::Invalid("--transport ", options.transport,
                                    ": Spark's protocol is served over gRPC only");
    }
    options.transport = "grpc";
  }
  ARROW_RETURN_NOT_OK(Check(options));
  return options;
}

}  // namespace quiver::sdk
