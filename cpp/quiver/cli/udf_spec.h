#pragma once

// The grammar of `quiver run --udf` and `--select`.
//
//   spec      := NAME '=' ['py' ':'] REF '(' [ARG (',' ARG)*] ')'     Python (runtime py)
//              | NAME '=' RUNTIME ':' SYMBOL '(' [ARG (',' ARG)*] ')'  a declared --runtime
//   RUNTIME   := IDENT declared with --runtime NAME=COMMAND; a spec whose text
//                before its first ':' is such a name (or `py`) names that runtime,
//                so a Python module named like a runtime is written py:module:FUNCTION
//   SYMBOL    := the name the worker registered its function under (payload
//                format "symbol"): any text without spaces, quotes or parentheses
//   NAME      := IDENT | QUOTED                      the result column
//   REF       := PATH.py ':' FUNCTION                a Python file; relative paths are
//              | module.sub ':' FUNCTION            taken from the current directory
//   FUNCTION  := IDENT ('.' IDENT)*                  e.g. shout or Cleaner.normalize
//   ARG       := COLUMN | LITERAL | CALL
//   COLUMN    := IDENT | QUOTED                      e.g. name, `unit price`
//   LITERAL   := INTEGER (int64) | FLOAT (float64) | 'text' ('' is a quote)
//              | true | false | null
//   CALL      := IDENT '(' [ARG (',' ARG)*] ')'      an Arrow compute function,
//                                                    e.g. utf8_upper(name), add(value, 1)
//   IDENT     := [A-Za-z_][A-Za-z0-9_]*
//   QUOTED    := '`' any text, `` for a backquote '`'
//
// Spaces are allowed between tokens. true, false and null are literals; write
// `true` for a column named true. Errors name the position (1-based) of the
// problem and draw a caret under it.

#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>

#include "quiver/exec/udf_call.h"

namespace quiver::cli {

/// Parses one --udf spec into the call the operator runs.
///
/// A file reference is made absolute against `cwd` and must name an existing
/// file; compute function names must be in Arrow's function registry (so
/// arrow::compute::Initialize() must have run). Syntax errors are usage errors.
arrow::Result<exec::UdfCall> ParseUdfSpec(std::string_view spec, const std::filesystem::path& cwd);

/// The runtime of Python UDFs, the default when a spec names none.
inline constexpr char kPythonRuntime[] = "py";

/// Same, where `runtimes` are the names declared with --runtime: a spec that
/// starts with one of them and ':' runs on that runtime (UdfCall::runtime, payload
/// format "symbol"); any other spec is Python (UdfCall::runtime "py").
arrow::Result<exec::UdfCall> ParseUdfSpec(std::string_view spec, const std::filesystem::path& cwd,
                                          const std::set<std::string>& runtimes);

/// Parses a --select list: column names (IDENT or QUOTED) separated by commas;
/// an empty or blank text is the empty list.
arrow::Result<std::vector<std::string>> ParseColumnList(std::string_view text);

}  // namespace quiver::cli
