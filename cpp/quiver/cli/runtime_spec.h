#pragma once

// The grammar of `quiver run --runtime`: a named kind of worker.
//
//   runtime   := NAME '=' COMMAND [ARG ...]
//   NAME      := IDENT (not `py`, the built-in Python runtime)
//   COMMAND   := a program: a path (absolute, or relative to the current
//                directory) or a name looked up in PATH
//   ARG       := words separated by spaces; '...' and "..." quote, \ escapes
//
// e.g. --runtime 'rs=./target/release/my-udfs --threads 1'. The engine starts
// the command as `COMMAND ARG... [--transport grpc] --id ID --connection ENDPOINT`.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>

namespace quiver::cli {

/// One --runtime declaration.
struct RuntimeSpec {
  std::string name;
  /// The program (as found: a path) and its arguments.
  std::vector<std::string> command;
};

/// Parses a --runtime text and checks that its program exists and can be run
/// (a relative path is taken from `cwd`, a bare name is looked up in PATH).
/// Syntax errors are usage errors; a missing program is an IOError naming it.
arrow::Result<RuntimeSpec> ParseRuntimeSpec(std::string_view text,
                                            const std::filesystem::path& cwd);

/// Splits a command into words: spaces separate, '...' and "..." quote, \ escapes.
arrow::Result<std::vector<std::string>> SplitCommand(std::string_view text);

}  // namespace quiver::cli
