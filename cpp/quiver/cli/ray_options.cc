#include "quiver/cli/ray_options.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>
#include <utility>

#include <arrow/buffer.h>
#include <arrow/compute/expression.h>
#include <arrow/util/base64.h>

#include "quiver/cli/python_interpreter.h"
#include "quiver/cli/udf_spec.h"
#include "quiver/cli/usage_error.h"
#include "quiver/io/json_text.h"

namespace quiver::cli {
namespace {

std::string JsonStringList(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    out += io::JsonQuoted(items[i]);
  }
  return out + "]";
}

// The --udf specs as the JSON list python -m quiver.ray reads: name, payload format,
// payload and each argument serialized by arrow::compute::Serialize, in base64.
arrow::Result<std::string> CallsJson(const std::vector<std::string>& specs) {
  const auto cwd = std::filesystem::current_path();
  std::string out = "[";
  for (size_t i = 0; i < specs.size(); ++i) {
    ARROW_ASSIGN_OR_RAISE(auto call, ParseUdfSpec(specs[i], cwd));
    std::vector<std::string> arguments;
    for (const auto& argument : call.arguments) {
      ARROW_ASSIGN_OR_RAISE(auto buffer, arrow::compute::Serialize(argument));
      arguments.push_back(arrow::util::base64_encode(std::string_view(*buffer)));
    }
    if (i > 0) out += ", ";
    out += "{\"name\": ";
    out += io::JsonQuoted(call.name);
    out += ", \"payload_format\": ";
    out += io::JsonQuoted(call.payload_format);
    out += ", \"payload\": ";
    out += io::JsonQuoted(call.payload);
    out += ", \"arguments\": " + JsonStringList(arguments) + "}";
  }
  return out + "]";
}

arrow::Status CheckRayOptions(const RunOptions& options, const RayOptions& ray) {
  if (options.batch_rows <= 0) return UsageError("--batch-rows must be at least 1");
  if (options.workers <= 0) return UsageError("--workers must be at least 1");
  if (options.max_in_flight <= 0) return UsageError("--max-in-flight must be at least 1");
  if (!(options.batch_timeout_seconds > 0)) {
    return UsageError("--batch-timeout must be a positive number of seconds");
  }
  if (ray.actors < 0) return UsageError("--ray-actors must be 0 (automatic) or more");
  if (ray.retries < 0) return UsageError("--ray-retries must be 0 or more");
  if (options.udf_specs.empty()) return UsageError("no --udf given");
  if (!options.runtime_specs.empty()) {
    return UsageError(
        "--runtime cannot be used with --ray: Ray actors run Python workers only; run "
        "UDFs of other runtimes without --ray");
  }
  if (options.input_mode != "columnar") {
    return UsageError("--input-mode rows is for local comparisons; drop it with --ray");
  }
  if (options.output.empty()) {
    return UsageError("no output given; add -o OUTPUT_DIRECTORY (one file per input file)");
  }
  if (options.output_format && *options.output_format == "noop") {
    return UsageError("--output-format noop is not supported with --ray");
  }
  if (!options.sandbox && !options.sandbox_read.empty()) {
    return UsageError("--sandbox-read is given without --sandbox: add --sandbox");
  }
  return arrow::Status::OK();
}

}  // namespace

void AddRayOptions(CLI::App* run, RayOptions& ray) {
  run->add_option("--ray", ray.address,
                  "Run on a Ray cluster: auto (the one started on this machine with `ray "
                  "start`), local (a new one-node Ray) or HOST:PORT. INPUT is then a file, a "
                  "directory or a quoted glob, -o a directory with one output per input "
                  "file (needs `pip install 'quiver[ray]'`; see docs/ray.md)");
  run->add_option("--ray-actors", ray.actors,
                  "With --ray: Ray actors, each with --workers workers (default: the "
                  "cluster's CPUs divided by --workers)");
  run->add_option("--ray-retries", ray.retries,
                  "With --ray: times a file is run again after its worker or actor died")
      ->capture_default_str();
}

arrow::Result<std::vector<std::string>> RayDriverCommand(const RunOptions& options,
                                                         const RayOptions& ray) {
  ARROW_RETURN_NOT_OK(CheckRayOptions(options, ray));
  ARROW_ASSIGN_OR_RAISE(const std::string calls, CallsJson(options.udf_specs));
  ARROW_RETURN_NOT_OK(CheckPythonInterpreter(options.python));
  std::vector<std::string> command = {options.python, "-m",    "quiver.ray",   "run",
                                      options.input,  "-o",    options.output, "--calls",
                                      calls,          "--ray", ray.address};
  if (options.select) {
    ARROW_ASSIGN_OR_RAISE(auto columns, ParseColumnList(*options.select));
    command.insert(command.end(), {"--select", JsonStringList(columns)});
  }
  if (options.input_format)
    command.insert(command.end(), {"--input-format", *options.input_format});
  if (options.output_format) {
    command.insert(command.end(), {"--output-format", *options.output_format});
  }
  command.insert(command.end(), {"--batch-rows", std::to_string(options.batch_rows), "--workers",
                                 std::to_string(options.workers), "--batch-timeout",
                                 std::to_string(options.batch_timeout_seconds), "--max-in-flight",
                                 std::to_string(options.max_in_flight), "--transport",
                                 options.transport, "--retries", std::to_string(ray.retries)});
  if (ray.actors > 0) command.insert(command.end(), {"--actors", std::to_string(ray.actors)});
  if (options.force) command.emplace_back("--force");
  if (options.quiet) command.emplace_back("--quiet");
  // Every actor's session sandboxes its workers (refused on a node that cannot).
  if (options.sandbox) command.emplace_back("--sandbox");
  for (const auto& path : options.sandbox_read) {
    command.insert(command.end(),
                   {"--sandbox-read", std::filesystem::absolute(path).lexically_normal().string()});
  }
  return command;
}

arrow::Status RunOnRay(const RunOptions& options, const RayOptions& ray) {
  ARROW_ASSIGN_OR_RAISE(auto command, RayDriverCommand(options, ray));
  std::vector<char*> argv;
  for (auto& argument : command) argv.push_back(argument.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  ::execvp(argv[0], argv.data());
  return arrow::Status::IOError("could not start the Ray driver ", command[0],
                                " -m quiver.ray: ", std::strerror(errno));
}

}  // namespace quiver::cli
