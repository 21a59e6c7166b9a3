#pragma once

// Per-UDF Python environments for `quiver run` (docs/environments.md).
//
// Before any worker starts, quiver asks the Python package which environment
// each Python UDF runs in: `PYTHON -m quiver.envs resolve [--requirements FILE]
// REF...` reads each UDF's @quiver.udf(requirements=[...]) from its source
// without importing it, builds (once, cached) the virtual environments that are
// missing, with progress on stderr, and prints the interpreter of each.

#include <map>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "quiver/exec/udf_call.h"

namespace quiver::cli {

/// Where the Python UDFs of a run execute.
struct PythonEnvironmentsRequest {
  /// The interpreter that runs the quiver package (--python).
  std::string python;
  /// --requirements FILE for every Python UDF; empty when not given.
  std::string requirements_file;
  bool quiet = false;
};

/// Gives each Python call (runtime "py") that needs an environment a runtime of
/// its own, "py@ENVIRONMENT", and returns those runtimes' interpreters by name.
/// Calls that need none keep runtime "py". Runs the Python resolver only when
/// an environment may be needed (a requirements file, a UDF file that mentions
/// requirements, or a UDF named by module); a failed build is an error that
/// names the package and the build log.
arrow::Result<std::map<std::string, std::string>> AssignPythonEnvironments(
    const PythonEnvironmentsRequest& request, std::vector<exec::UdfCall>* calls);

}  // namespace quiver::cli
