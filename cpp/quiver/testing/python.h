#pragma once

#include <cstdlib>
#include <string>

namespace quiver::testing {

/// Returns the Python interpreter that has the quiver package: $QUIVER_PYTHON,
/// else the project environment the build was configured with.
inline std::string PythonForWorkers() {
  const char* python = std::getenv("QUIVER_PYTHON");
  return python != nullptr && *python != '\0' ? python : QUIVER_TEST_PYTHON;
}

}  // namespace quiver::testing
