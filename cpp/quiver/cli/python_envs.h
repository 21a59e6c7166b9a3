#pragma once

// Per-UDF Python environments for `quiver run` (docs/environments.md).
//
// Before any worker starts, quiver asks the Python package which environment
// each Python UDF runs in: `PYTHON -m quiver.envs resolve [--requirements FILE]
// REF...` reads each UDF's @quiver.udf(requirements=[...], sandbox=...) from its
// source without importing it, builds (once, cached) the virtual environments
// that are missing, with progress on stderr, and prints the interpreter of each
// and, for a UDF that declares a sandbox, the paths its sandboxed workers may read.
//
// The declarations are read before any worker starts (not reported by the
// worker once it has imported the UDF's file), so that a UDF that asks for a
// sandbox never has any of its file's code run outside one.

#include <map>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "quiver/cli/runtime_spec.h"
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

/// The paths the sandboxed workers of a runtime may read (besides the system and
/// their import path), by runtime name: the runtimes of UDFs that declare
/// @quiver.udf(sandbox=...), whose workers are always sandboxed.
using SandboxedRuntimes = std::map<std::string, UdfSandbox>;

/// Gives each Python call (runtime "py") that needs an environment a runtime of
/// its own, "py@ENVIRONMENT", and each that declares a sandbox one of its own,
/// "py+sandbox" (or "py@ENVIRONMENT+sandbox"), and returns those runtimes'
/// interpreters by name; the sandboxed ones go to `sandboxed` too. Calls that
/// need neither keep runtime "py". Runs the Python resolver only when one may be
/// needed (a requirements file, a UDF file that mentions requirements or
/// sandbox, or a UDF named by module); a failed build is an error that names the
/// package and the build log. Without `sandboxed` (the grouped and table kinds),
/// a declared sandbox is refused: never run unsandboxed.
arrow::Result<std::map<std::string, std::string>> AssignPythonEnvironments(
    const PythonEnvironmentsRequest& request, std::vector<exec::UdfCall>* calls,
    SandboxedRuntimes* sandboxed = nullptr);

}  // namespace quiver::cli
