#pragma once

// The sandbox's Landlock ruleset: which files a worker may read, execute and
// write, which TCP ports it may bind or connect to, and (ABI 6) that it may
// neither signal processes outside its sandbox nor reach their abstract Unix
// sockets. Built in the engine; the child only calls landlock_restrict_self.

#include <cstdint>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "quiver/io/unique_fd.h"

namespace quiver::sandbox {

/// Returns the Landlock ABI version of the running kernel, or 0 when Landlock
/// is not there (not built in, not among the active LSMs, or blocked).
int LandlockAbi();

/// What a worker may reach.
struct LandlockGrants {
  /// Read and execute, file or directory (and everything beneath).
  std::vector<std::string> read_only;
  /// Every file system right, directory and everything beneath.
  std::vector<std::string> read_write;
  /// Reading and writing existing files only (/dev/null).
  std::vector<std::string> device_files;
  /// May create Unix socket files directly in (a gRPC worker's socket).
  std::vector<std::string> socket_directories;
  /// TCP ports the worker may bind (a gRPC worker serving on loopback).
  std::vector<uint16_t> bind_ports;
};

/// Builds the ruleset for `abi` (>= 1). Paths that do not exist are skipped.
arrow::Result<io::UniqueFd> BuildLandlockRuleset(int abi, const LandlockGrants& grants);

/// In the child, before RestrictSelf: lets it read its own /proc/PID (which
/// /proc/self names only once it runs). Async-signal-safe; returns 0 or the
/// errno. The ruleset must be this child's alone: the rule is added to it.
int AllowOwnProc(int ruleset_fd) noexcept;

/// In the child: no_new_privs, then the ruleset. Async-signal-safe; returns 0
/// or the errno.
int RestrictSelf(int ruleset_fd) noexcept;

}  // namespace quiver::sandbox
