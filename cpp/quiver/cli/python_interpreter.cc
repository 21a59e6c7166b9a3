#include "quiver/cli/python_interpreter.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <system_error>

namespace quiver::cli {
namespace {

namespace fs = std::filesystem;

bool IsExecutableFile(const fs::path& path) {
  std::error_code error;
  return fs::is_regular_file(path, error) && ::access(path.c_str(), X_OK) == 0;
}

bool FoundOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::string_view rest(path);
  while (true) {
    const size_t colon = rest.find(':');
    const std::string_view directory = rest.substr(0, colon);
    if (IsExecutableFile(fs::path(directory.empty() ? "." : std::string(directory)) / name)) {
      return true;
    }
    if (colon == std::string_view::npos) return false;
    rest.remove_prefix(colon + 1);
  }
}

}  // namespace

std::string DefaultPython() {
  const char* from_environment = std::getenv("QUIVER_PYTHON");
  if (from_environment != nullptr && *from_environment != '\0') return from_environment;
#ifdef QUIVER_DEFAULT_PYTHON
  if (IsExecutableFile(QUIVER_DEFAULT_PYTHON)) return QUIVER_DEFAULT_PYTHON;
#endif
  return "python3";
}

arrow::Status CheckPythonInterpreter(const std::string& python) {
  constexpr char kAdvice[] =
      "; point --python (or the environment variable QUIVER_PYTHON) at a Python interpreter "
      "that has the quiver package installed";
  if (python.empty()) return arrow::Status::Invalid("--python is empty", kAdvice);
  const bool is_path = python.find('/') != std::string::npos;
  if (is_path ? IsExecutableFile(python) : FoundOnPath(python)) return arrow::Status::OK();
  if (is_path && fs::exists(python)) {
    return arrow::Status::IOError("Python interpreter ", python, " is not an executable file",
                                  kAdvice);
  }
  return arrow::Status::IOError("Python interpreter ", python,
                                is_path ? " does not exist" : " is not on PATH", kAdvice);
}

}  // namespace quiver::cli
