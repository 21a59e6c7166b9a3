#include "quiver/cli/runtime_spec.h"

#include <unistd.h>

#include <cstdlib>
#include <system_error>

#include "quiver/cli/udf_spec.h"
#include "quiver/cli/usage_error.h"

namespace quiver::cli {
namespace {

namespace fs = std::filesystem;

constexpr char kRuntimeForm[] =
    "a runtime is NAME=COMMAND [ARG ...], e.g. --runtime 'rs=./target/release/my-udfs'";

// A runtime whose workers speak Spark's UdfWorker protocol (docs/spark-protocol.md).
constexpr char kSparkScheme[] = "spark:";
// ... whose UDFs are Python references (a Python worker in Spark's dialect).
constexpr char kSparkPythonScheme[] = "spark+python:";

bool IsIdentifier(std::string_view text) {
  if (text.empty()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsExecutableFile(const fs::path& path) {
  std::error_code error;
  return fs::is_regular_file(path, error) && ::access(path.c_str(), X_OK) == 0;
}

// Finds the program as execvp would, so that a missing one is reported before
// any worker is started.
arrow::Result<std::string> FindProgram(const std::string& runtime, const std::string& program,
                                       const fs::path& cwd) {
  if (program.find('/') != std::string::npos) {
    fs::path path(program);
    if (path.is_relative()) path = cwd / path;
    if (IsExecutableFile(path)) return program;
    std::error_code error;
    return arrow::Status::IOError(
        "--runtime '", runtime, "': the worker command ", program,
        fs::exists(path, error) ? " is not an executable file" : " does not exist",
        " (relative paths are taken from the current directory, ", cwd.string(), ")");
  }
  const char* path_variable = std::getenv("PATH");
  std::string_view directories = path_variable ? path_variable : "/usr/bin:/bin";
  while (true) {
    const size_t colon = directories.find(':');
    const std::string directory(directories.substr(0, colon));
    if (IsExecutableFile(fs::path(directory.empty() ? "." : directory) / program)) return program;
    if (colon == std::string_view::npos) break;
    directories.remove_prefix(colon + 1);
  }
  return arrow::Status::IOError("--runtime '", runtime, "': the worker command '", program,
                                "' was not found in PATH");
}

}  // namespace

arrow::Result<std::vector<std::string>> SplitCommand(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else if (c == '\\' && quote == '"' && i + 1 < text.size()) {
        word += text[++i];
      } else {
        word += c;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < text.size()) {
      word += text[++i];
      in_word = true;
    } else if (c == ' ' || c == '\t') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (quote != 0) {
    return UsageError(std::string("unterminated ") + quote + " in the command '" +
                      std::string(text) + "'");
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

arrow::Result<RuntimeSpec> ParseRuntimeSpec(std::string_view text, const fs::path& cwd) {
  const size_t equals = text.find('=');
  if (equals == std::string_view::npos) {
    return UsageError("--runtime '" + std::string(text) + "': expected NAME=COMMAND\n" +
                      kRuntimeForm);
  }
  RuntimeSpec spec;
  std::string_view name = text.substr(0, equals);
  while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
  while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
  spec.name = std::string(name);
  if (!IsIdentifier(spec.name)) {
    return UsageError("--runtime '" + std::string(text) + "': '" + spec.name +
                      "' is not a runtime name (letters, digits, _)\n" + kRuntimeForm);
  }
  if (spec.name == kPythonRuntime) {
    return UsageError(
        "--runtime: 'py' is the built-in Python runtime; choose its interpreter "
        "with --python");
  }
  std::string_view command = text.substr(equals + 1);
  while (!command.empty() && command.front() == ' ') command.remove_prefix(1);
  if (command.starts_with(kSparkPythonScheme)) {
    spec.transport = "spark";
    spec.payload_format = "python/ref";
    command.remove_prefix(std::string_view(kSparkPythonScheme).size());
  } else if (command.starts_with(kSparkScheme)) {
    spec.transport = "spark";
    command.remove_prefix(std::string_view(kSparkScheme).size());
  }
  ARROW_ASSIGN_OR_RAISE(spec.command, SplitCommand(command));
  if (spec.command.empty()) {
    return UsageError("--runtime '" + std::string(text) + "': no command after '='\n" +
                      kRuntimeForm);
  }
  ARROW_RETURN_NOT_OK(FindProgram(spec.name, spec.command[0], cwd).status());
  return spec;
}

}  // namespace quiver::cli
