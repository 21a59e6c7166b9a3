#pragma once

// Which Python runs the workers of `quiver run`.

#include <string>

#include <arrow/status.h>

namespace quiver::cli {

/// Returns the interpreter used when --python is not given: the environment
/// variable QUIVER_PYTHON, else the one quiver was built with, else python3.
std::string DefaultPython();

/// Checks that `python` names an executable file (a path, or a name found on
/// PATH) so that a typo fails with a clear message before any worker starts.
arrow::Status CheckPythonInterpreter(const std::string& python);

}  // namespace quiver::cli
