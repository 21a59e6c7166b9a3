#include "quiver/cli/sandbox_options.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "quiver/sandbox/sandbox_policy.h"
#include "quiver/worker/worker_dispatcher.h"
#include "quiver/worker/worker_spec.h"

extern char** environ;

namespace quiver::cli {
namespace {

namespace fs = std::filesystem;

// The folders of the Python files the --udf specs name (REF := PATH.py ':'
// FUNCTION): a UDF may import its neighbours.
std::vector<std::string> UdfFileFolders(const std::vector<std::string>& specs) {
  std::vector<std::string> folders;
  for (const auto& spec : specs) {
    const size_t end = spec.find(".py:");
    if (end == std::string::npos) continue;
    const size_t start = spec.find_last_of("=:", end);
    std::string path = spec.substr(start == std::string::npos ? 0 : start + 1, end + 3 - start - 1);
    path.erase(0, path.find_first_not_of(' '));
    std::error_code error;
    const fs::path absolute = fs::absolute(path, error);
    if (!error) folders.push_back(absolute.parent_path().string());
  }
  return folders;
}

// The import path of `python` (sys.path, with .pth files applied), so that a
// sandboxed worker reads its packages wherever they were installed. Empty when
// the interpreter cannot tell: the worker then fails to import and says so.
std::vector<std::string> PythonImportPath(const std::string& python) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return {};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  std::vector<std::string> argv = {python, "-c",
                                   "import sys; print('\\n'.join(p for p in sys.path if p))"};
  std::vector<char*> args;
  for (auto& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  std::string text;
  char buffer[4096];
  ssize_t got = 0;
  while (spawned == 0 &&
         ((got = ::read(pipe_fds[0], buffer, sizeof(buffer))) > 0 || (got < 0 && errno == EINTR))) {
    if (got > 0) text.append(buffer, static_cast<size_t>(got));
  }
  ::close(pipe_fds[0]);
  if (spawned != 0) return {};
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::vector<std::string> paths;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    paths.push_back(text.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return paths;
}

// Asks for the sandbox in the workers' environment (the engine enters it
// between fork and exec), with read access to `readable`, the Python worker's
// import path and, under --sandbox, what the whole run may read; the workers
// start by fork/exec, since the fork server's children are not the engine's to sandbox.
arrow::Status RequestSandbox(const RunOptions& options, const std::vector<std::string>& readable,
                             worker::WorkerSpec* spec) {
  spec->launcher = worker::LauncherKind::kForkExec;
  std::vector<std::string> granted = readable;
  if (options.sandbox) {
    granted.insert(granted.end(), options.sandbox_read.begin(), options.sandbox_read.end());
    for (auto& folder : UdfFileFolders(options.udf_specs)) granted.push_back(std::move(folder));
  }
  // Any Python worker, the run's or a requirements environment's: its own import path.
  if (spec->command.size() >= 3 &&
      worker::PythonWorkerCommand(spec->command[0]) ==
          std::vector<std::string>(spec->command.begin(), spec->command.begin() + 3)) {
    for (auto& path : PythonImportPath(spec->command[0])) granted.push_back(std::move(path));
  }
  std::string joined;
  for (const auto& path : granted) joined += (joined.empty() ? "" : ":") + path;
  spec->environment[sandbox::kSandboxVariable] = "1";
  spec->environment[sandbox::kReadPathsVariable] = joined;
  return arrow::Status::OK();
}

}  // namespace

void AddSandboxOptions(CLI::App* run, RunOptions* options) {
  run->add_flag(
      "--sandbox", options->sandbox,
      "Run the workers in a sandbox (Linux Landlock + seccomp): no network but their "
      "connection to the engine; read access only to the system's libraries, the worker "
      "program, the UDF files' folders, the Python import path and --sandbox-read paths (not "
      "your home: ~/.ssh stays out of reach); write access only to a private temporary "
      "directory ($TMPDIR); no ptrace, mount, namespaces, keyctl or bpf. A UDF that breaks a "
      "rule gets a permission error naming it. Workers start by fork/exec (no fork server). "
      "Refused, not ignored, on a kernel without Landlock ABI 4 (Linux >= 6.7). One UDF alone "
      "is sandboxed by its decorator, @quiver.udf(sandbox=True) (or sandbox=[PATHS] it may "
      "read), without this option. See docs/security.md");
  run->add_option("--sandbox-read", options->sandbox_read,
                  "With --sandbox: one more file or folder the UDFs may read (repeatable), "
                  "e.g. a model or a lookup table");
}

arrow::Status ApplySandboxOptions(const RunOptions& options, worker::WorkerSpec* spec) {
  if (!options.sandbox) {
    if (!options.sandbox_read.empty()) {
      return arrow::Status::Invalid("--sandbox-read is given without --sandbox: add --sandbox");
    }
    return arrow::Status::OK();
  }
  ARROW_RETURN_NOT_OK(sandbox::CheckSandboxSupported());
  return RequestSandbox(options, {}, spec);
}

arrow::Status ApplyUdfSandbox(const RunOptions& options, const UdfSandbox& sandbox,
                              worker::WorkerSpec* spec) {
  const arrow::Status supported = sandbox::CheckSandboxSupported();
  if (!supported.ok()) {
    std::string names;
    for (const auto& udf : sandbox.udfs) names += (names.empty() ? "'" : ", '") + udf + "'";
    return supported.WithMessage(names, " declare", sandbox.udfs.size() == 1 ? "s" : "",
                                 " @quiver.udf(sandbox=...): ", supported.message());
  }
  return RequestSandbox(options, sandbox.readable, spec);
}

}  // namespace quiver::cli
