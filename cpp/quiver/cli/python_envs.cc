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

// Tells whether the file of a python/ref payload may declare requirements: a
// module reference cannot be read from here, and a file is searched for the word.
bool MayDeclareRequirements(const exec::UdfCall& call) {
  if (call.payload_format != kPythonRef) return false;
  const size_t colon = call.payload.rfind(':');
  const std::string target = call.payload.substr(0, colon == std::string::npos ? 0 : colon);
  const bool is_file = target.find('/') != std::string::npos ||
                       (target.size() > 3 && target.compare(target.size() - 3, 3, ".py") == 0);
  if (!is_file) return true;
  std::ifstream file(target, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  return text.find("requirements") != std::string::npos;
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
    const PythonEnvironmentsRequest& request, std::vector<exec::UdfCall>* calls) {
  std::vector<exec::UdfCall*> python_calls;
  bool needed = !request.requirements_file.empty();
  for (auto& call : *calls) {
    if (call.runtime != kPythonRuntime) continue;
    python_calls.push_back(&call);
    needed = needed || MayDeclareRequirements(call);
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
    const size_t tab = line.find('\t');
    if (tab == std::string::npos) continue;
    size_t index = 0;
    const auto parsed = std::from_chars(line.data(), line.data() + tab, index);
    if (parsed.ec != std::errc() || index >= python_calls.size()) break;
    const std::string python = line.substr(tab + 1);
    ++answered;
    if (python == "-") continue;
    const std::string runtime = RuntimeName(python);
    runtimes[runtime] = python;
    python_calls[index]->runtime = runtime;
  }
  if (answered != python_calls.size()) {
    return arrow::Status::IOError("quiver.envs resolve answered for ", answered, " of ",
                                  python_calls.size(), " Python UDFs: '", output.stdout_text, "'");
  }
  return runtimes;
}

}  // namespace quiver::cli
