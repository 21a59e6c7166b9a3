#include "quiver/sandbox/sandbox_policy.h"

#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>

#include "quiver/sandbox/landlock_rules.h"
#include "quiver/sandbox/library_paths.h"

namespace quiver::sandbox {
namespace {

namespace fs = std::filesystem;

// What every program needs to start: the loader, libraries, configuration,
// and what runtimes read about the machine (CPU count, memory, cgroups). Of
// /proc, only machine-wide entries: another process's /proc/PID/environ
// (the engine's, with whatever secrets its environment holds) is readable to
// a Landlock-sandboxed process that may read /proc. The worker's own
// /proc/PID is granted in the child (AllowOwnProc), once its PID exists.
constexpr const char* kSystemPaths[] = {
    "/usr",       "/lib",          "/lib32",        "/lib64",
    "/bin",       "/sbin",         "/etc",          "/opt",
    "/sys",       "/nix/store",    "/proc/cpuinfo", "/proc/meminfo",
    "/proc/stat", "/proc/loadavg", "/proc/sys",     "/proc/filesystems"};
constexpr const char* kReadOnlyDevices[] = {"/dev/urandom", "/dev/random"};
constexpr const char* kDevices[] = {"/dev/null", "/dev/zero"};

std::vector<std::string> SplitPaths(std::string_view text) {
  std::vector<std::string> paths;
  while (!text.empty()) {
    const size_t colon = text.find(':');
    if (colon != 0) paths.emplace_back(text.substr(0, colon));
    if (colon == std::string_view::npos) break;
    text.remove_prefix(colon + 1);
  }
  return paths;
}

// True when granting `path` would grant the user's home (and so ~/.ssh):
// the home itself or a folder above it.
bool CoversHome(const std::string& path) {
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return false;
  std::error_code error;
  const fs::path granted = fs::weakly_canonical(path, error);
  const fs::path home_path = fs::weakly_canonical(home, error);
  auto g = granted.begin();
  auto h = home_path.begin();
  for (; g != granted.end() && h != home_path.end(); ++g, ++h) {
    if (*g != *h) return false;
  }
  return g == granted.end() || (g->empty() && std::next(g) == granted.end());
}

// The program and the tree it was installed in: DIR for DIR/prog, PREFIX for
// PREFIX/bin/prog (a virtual environment, an install prefix), but never the
// root or the user's home (then the folder, or the program alone).
std::string ProgramTree(const std::string& program) {
  const fs::path directory = fs::path(program).parent_path();
  if (directory.filename() == "bin") {
    const fs::path prefix = directory.parent_path();
    if (prefix.has_relative_path() && !CoversHome(prefix.string())) return prefix.string();
  }
  if (directory.has_relative_path() && !CoversHome(directory.string())) return directory.string();
  return program;
}

// The worker's --connection argument, or "".
std::string ConnectionArgument(const std::vector<std::string>& argv) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == "--connection") return argv[i + 1];
  }
  return "";
}

std::string Lookup(const std::map<std::string, std::string>& environment, const char* key) {
  auto found = environment.find(key);
  return found == environment.end() ? "" : found->second;
}

arrow::Result<std::string> MakePrivateDirectory() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/quiver-sandbox-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    return arrow::Status::IOError("cannot create the sandboxed worker's private directory ",
                                  pattern, ": ", std::strerror(errno),
                                  "; point TMPDIR at a writable directory");
  }
  return pattern;
}

}  // namespace

arrow::Status CheckSandboxSupported() {
  const int abi = LandlockAbi();
  if (abi == 0) {
    return arrow::Status::NotImplemented(
        "the sandbox needs Linux Landlock, which this kernel does not offer (not built in, or "
        "not among the active security modules: add 'landlock' to the lsm= boot parameter); "
        "the run is refused rather than run unsandboxed. Run without the sandbox (--sandbox, "
        "@quiver.udf(sandbox=...)), or on Linux >= 6.7 with Landlock enabled");
  }
  if (abi < kMinimumLandlockAbi) {
    return arrow::Status::NotImplemented(
        "the sandbox needs Landlock ABI ", kMinimumLandlockAbi,
        " (Linux >= 6.7) for its network rules; this kernel has ABI ", abi,
        "; the run is refused rather than run with a weaker sandbox. Run without the sandbox "
        "(--sandbox, @quiver.udf(sandbox=...)), or on a newer kernel");
  }
  return arrow::Status::OK();
}

bool SandboxRequested(const std::map<std::string, std::string>& environment) {
  const std::string value = Lookup(environment, kSandboxVariable);
  return !value.empty() && value != "0";
}

arrow::Result<std::unique_ptr<PreparedSandbox>> PreparedSandbox::Prepare(
    const std::vector<std::string>& argv, std::map<std::string, std::string>* environment) {
  ARROW_RETURN_NOT_OK(CheckSandboxSupported());
  LandlockGrants grants;
  for (const char* path : kSystemPaths) grants.read_only.emplace_back(path);
  for (const char* path : kReadOnlyDevices) grants.read_only.emplace_back(path);
  for (const char* path : kDevices) grants.device_files.emplace_back(path);
  if (!argv.empty()) {
    // Both the tree the program is named in (a virtual environment) and the
    // one its symbolic links lead to (the interpreter the environment uses).
    grants.read_only.push_back(ProgramTree(argv[0]));
    std::error_code error;
    const fs::path real = fs::canonical(argv[0], error);
    if (!error) grants.read_only.push_back(ProgramTree(real.string()));
    // A compiled worker's shared libraries (e.g. the Arrow it was built with).
    for (auto& folder : ElfLibraryFolders(error ? argv[0] : real.string())) {
      if (!CoversHome(folder)) grants.read_only.push_back(std::move(folder));
    }
  }
  std::vector<std::string> extra = SplitPaths(Lookup(*environment, kReadPathsVariable));
  for (const char* variable : {"PYTHONPATH", "LD_LIBRARY_PATH"}) {
    const std::string value = Lookup(*environment, variable);
    const char* inherited = std::getenv(variable);
    for (auto& path : SplitPaths(value.empty() && inherited != nullptr ? inherited : value)) {
      extra.push_back(std::move(path));
    }
  }
  for (const auto& path : extra) {
    if (!CoversHome(path)) grants.read_only.push_back(path);
  }
  const std::string connection = ConnectionArgument(argv);
  bool allow_tcp = false;
  if (connection.rfind("grpc+tcp:", 0) == 0) {
    const size_t colon = connection.rfind(':');
    allow_tcp = true;
    grants.bind_ports.push_back(
        static_cast<uint16_t>(std::strtoul(connection.c_str() + colon + 1, nullptr, 10)));
  } else if (connection.rfind("grpc", 0) == 0) {
    const std::string path = connection.substr(connection.find(':') + 1);
    grants.socket_directories.push_back(fs::path(path).parent_path().string());
  }
  ARROW_ASSIGN_OR_RAISE(std::string directory, MakePrivateDirectory());
  grants.read_write.push_back(directory);
  auto ruleset = BuildLandlockRuleset(LandlockAbi(), grants);
  if (!ruleset.ok()) {
    std::error_code error;
    fs::remove_all(directory, error);
    return ruleset.status();
  }
  for (const char* variable : {"TMPDIR", "TMP", "TEMP"}) (*environment)[variable] = directory;
  (*environment)[kSandboxVariable] =
      std::string("no network but the engine's connection") +
      "; reads only the system, the worker's program, its UDFs' files and " + kReadPathsVariable +
      "; writes only in its private directory " + directory +
      " ($TMPDIR); no ptrace, mount, namespaces, keyctl or bpf";
  return std::unique_ptr<PreparedSandbox>(
      new PreparedSandbox(std::move(ruleset).ValueUnsafe(), allow_tcp, std::move(directory)));
}

PreparedSandbox::PreparedSandbox(io::UniqueFd ruleset, bool allow_tcp,
                                 std::string private_directory)
    : ruleset_(std::move(ruleset)),
      filter_(allow_tcp),
      private_directory_(std::move(private_directory)) {}

PreparedSandbox::~PreparedSandbox() {
  std::error_code error;  // best effort: a leftover is only a temporary directory
  fs::remove_all(private_directory_, error);
}

int PreparedSandbox::Enter() const noexcept {
  if (const int error = AllowOwnProc(ruleset_.get()); error != 0) return error;
  if (const int error = RestrictSelf(ruleset_.get()); error != 0) return error;
  return filter_.Install();
}

}  // namespace quiver::sandbox
