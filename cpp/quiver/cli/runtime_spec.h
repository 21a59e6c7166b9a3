#pragma once

// The grammar of `quiver run --runtime`: a named kind of worker.
//
//   runtime   := NAME '=' [SCHEME] COMMAND [ARG ...]
//   SCHEME    := 'spark:'         the worker speaks Spark's UdfWorker protocol
//              | 'spark+python:'  ... and takes its UDFs as Python references
//                                 (payload format python/ref: --udf 'x=NAME:mod:f(c)')
//   NAME      := IDENT (not `py`, the built-in Python runtime)
//   COMMAND   := a program: a path (absolute, or relative to the current
//                directory) or a name looked up in PATH
//   ARG       := words separated by spaces; '...' and "..." quote, \ escapes
//
// e.g. --runtime 'rs=./target/release/my-udfs --threads 1'. The engine starts
// the command as `COMMAND ARG... [--transport grpc] --id ID --connection ENDPOINT`.
// With a scheme the worker speaks Spark's UdfWorker protocol (docs/spark-protocol.md):
// it is started as `COMMAND ARG... --id ID --connection SOCKET_PATH`, e.g.
// --runtime 'sp=spark+python:.venv/bin/python -m quiver.worker --dialect spark'.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>

namespace quiver::cli {

/// The sandbox Python UDFs declare with @quiver.udf(sandbox=...).
struct UdfSandbox {
  /// What its workers may read besides the system and their import path: the
  /// UDFs' folders and the paths they declare.
  std::vector<std::string> readable;
  /// The UDFs (result names) that declare it, for the errors.
  std::vector<std::string> udfs;
};

/// One --runtime declaration.
struct RuntimeSpec {
  std::string name;
  /// The program (as found: a path) and its arguments.
  std::vector<std::string> command;
  /// The transport its workers are reached by: "spark" for a `spark:` runtime,
  /// empty for quiver.v1 over the run's --transport.
  std::string transport;
  /// The payload format of its UDFs when not "symbol": "python/ref" for `spark+python:`.
  std::string payload_format;
  /// Set for the runtime of Python UDFs that declare @quiver.udf(sandbox=...):
  /// its workers are always sandboxed and may read these paths too.
  std::optional<UdfSandbox> sandbox;
};

/// Parses a --runtime text and checks that its program exists and can be run
/// (a relative path is taken from `cwd`, a bare name is looked up in PATH).
/// Syntax errors are usage errors; a missing program is an IOError naming it.
arrow::Result<RuntimeSpec> ParseRuntimeSpec(std::string_view text,
                                            const std::filesystem::path& cwd);

/// Splits a command into words: spaces separate, '...' and "..." quote, \ escapes.
arrow::Result<std::vector<std::string>> SplitCommand(std::string_view text);

}  // namespace quiver::cli
