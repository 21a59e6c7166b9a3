#include "quiver/cli/python_envs.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "quiver/cli/udf_spec.h"

extern char** environ;

namespace quiver::cli {
namespace {

constexpr char kPythonRef[] = "python/ref";

// Tells whether the file of a python/ref payload may declare requirements or a
// sandbox: a module reference cannot be read from here, and a file is searched
// for the words.
bool MayDeclareEnvironment(const exec::UdfCall& call) {
  if (call.payload_format != kPythonRef) return false;
  const size_t colon = call.payload.rfind(':');
  const std::string target = call.payload.substr(0, colon == std::string::npos ? 0 : colon);
  const bool is_file = target.find('/') != std::string::npos ||
                       (target.size() > 3 && target.compare(target.size() - 3, 3, ".py") == 0);
  if (!is_file) return true;
  std::ifstream file(target, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  return text.find("requirements") != std::string::npos ||
         text.find("sandbox") != std::string::npos;
}

std::vector<std::string> SplitTabs(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab - start));
    if (tab == std::string::npos) return fields;
    start = tab + 1;
  }
}

// The runtime of the sandboxed UDF `udf` of `base` ("py" or "py@ENV") that may
// read `paths`: "BASE+sandbox", numbered when UDFs of one base declare different paths.
std::string SandboxedRuntimeName(const std::string& base, const std::vector<std::string>& paths,
                                 const std::string& udf, SandboxedRuntimes* sandboxed) {
  for (int number = 1;; ++number) {
    const std::string name = base + "+sandbox" + (number > 1 ? std::to_string(number) : "");
    auto [found, added] = sandboxed->emplace(name, UdfSandbox{paths, {}});
    if (added || found->second.readable == paths) {
      found->second.udfs.push_back(udf);
      return name;
    }
  }
}

struct Output {
  int status = 0;
  std::string stdout_text;
};

// Runs `argv` with stdout captured and stderr left to the terminal (progress).
arrow::Result<Output> RunCapturingStdout(const std::vector<std::string>& argv) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return arrow::Status::IOError("cannot create a pipe: ", std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (spawned != 0) {
    ::close(pipe_fds[0]);
    return arrow::Status::IOError("cannot run ", argv[0], ": ", std::strerror(spawned));
  }
  Output output;
  char buffer[4096];
  while (true) {
    const ssize_t got = ::read(pipe_fds[0], buffer, sizeof(buffer));
    if (got > 0) {
      output.stdout_text.append(buffer, static_cast<size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(pipe_fds[0]);
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  output.status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
  return output;
}

// The runtime name of an environment: "py@" and the environment's folder name.
std::string RuntimeName(const std::string& python) {
  // PYTHON is ENV/bin/python: the folder two levels up names the environment.
  std::string path = python;
  for (int level = 0; level < 2; ++level) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) break;
    path.resize(slash);
  }
  const size_t slash = path.rfind('/');
  return std::string(kPythonRuntime) + "@" +
         (slash == std::string::npos ? path : path.substr(slash + 1));
}

}  // namespace

arrow::Result<std::map<std::string, std::string>> AssignPythonEnvironments(
    const PythonEnvironmentsRequest& request, std::vector<exec::UdfCall>* calls,
    SandboxedRuntimes* sandboxed) {
  std::vector<exec::UdfCall*> python_calls;
  bool needed = !request.requirements_file.empty();
  for (auto& call : *calls) {
    if (call.runtime != kPythonRuntime) continue;
    python_calls.push_back(&call);
    needed = needed || MayDeclareEnvironment(call);
  }
  std::map<std::string, std::string> runtimes;
  if (!needed || python_calls.empty()) return runtimes;
  std::vector<std::string> argv = {request.python, "-m", "quiver.envs", "resolve"};
  if (!request.requirements_file.empty()) {
    argv.push_back("--requirements");
    argv.push_back(request.requirements_file);
  }
  if (request.quiet) argv.push_back("--quiet");
  argv.push_back("--");
  for (const auto* call : python_calls) {
    // A by-value (cloudpickle) UDF has no source to read: it needs no environment here.
    argv.push_back(call->payload_format == kPythonRef ? call->payload : "-:-");
  }
  ARROW_ASSIGN_OR_RAISE(auto output, RunCapturingStdout(argv));
  if (output.status != 0) {
    return arrow::Status::IOError(
        "cannot prepare the Python environments of the UDFs: ", request.python,
        " -m quiver.envs resolve exited with status ", output.status,
        " (its message is above; --python must name an interpreter with the quiver package)");
  }
  std::istringstream lines(output.stdout_text);
  std::string line;
  size_t answered = 0;
  while (std::getline(lines, line)) {
    // INDEX, the interpreter or "-", then "-" or "sandbox" and the paths it may read.
    const std::vector<std::string> fields = SplitTabs(line);
    if (fields.size() < 2) continue;
    size_t index = 0;
    const auto parsed =
        std::from_chars(fields[0].data(), fields[0].data() + fields[0].size(), index);
    if (parsed.ec != std::errc() || index >= python_calls.size()) break;
    if (fields.size() < 3) {
      // An older quiver package that cannot say whether a UDF asks for a sandbox.
      return arrow::Status::IOError(
          request.python, " -m quiver.envs resolve does not say which UDFs declare a sandbox (",
          "its quiver package is older than this quiver command); install the same quiver "
          "version in --python");
    }
    ++answered;
    const std::string& python = fields[1];
    const bool sandbox = fields[2] == "sandbox";
    if (python == "-" && !sandbox) continue;
    exec::UdfCall* call = python_calls[index];
    std::string runtime = python == "-" ? std::string(kPythonRuntime) : RuntimeName(python);
    if (sandbox) {
      if (sandboxed == nullptr) {
        return arrow::Status::NotImplemented(
            "'", call->name,
            "' declares sandbox=, which this kind of run cannot honour for one "
            "function; use --sandbox for the whole run");
      }
      runtime =
          SandboxedRuntimeName(runtime, std::vector<std::string>(fields.begin() + 3, fields.end()),
                               call->name, sandboxed);
    }
    runtimes[runtime] = python == "-" ? request.python : python;
    call->runtime = runtime;
  }
  if (answered != python_calls.size()) {
    return arrow::Status::IOError("quiver.envs resolve answered for ", answered, " of ",
                                  python_calls.size(), " Python UDFs: '", output.stdout_text, "'");
  }
  return runtimes;
}

}  // namespace quiver::cli
