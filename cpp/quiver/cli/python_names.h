#pragma once

// What `quiver run` can tell about a Python UDF file without running Python:
// whether a function name can be in it at all, and the names it defines at
// top level (for "did you mean"). Read as text, so that a misspelled function
// is refused before any worker starts; a file that may define names in ways
// text does not show (`from m import *`) is never refused.

#include <string>
#include <vector>

#include <arrow/status.h>

namespace quiver::cli {

/// Returns the names a Python source defines at top level: `def`, `async def`,
/// `class` and plain `NAME =` assignments, in order, without repeats.
std::vector<std::string> TopLevelNames(const std::string& source);

/// Checks that `function` (its first part, for `Outer.inner`) can be defined
/// in the Python file at `path`: refused, as a usage error naming the file and
/// the closest top-level name, only when the name occurs nowhere in the file
/// and the file has no star import. `option` (e.g. "--udf") starts the message.
arrow::Status CheckPythonFunction(const std::string& path, const std::string& function,
                                  const std::string& option);

}  // namespace quiver::cli
