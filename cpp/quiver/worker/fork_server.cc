#include "quiver/worker/fork_server.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <utility>

#include <arrow/status.h>

namespace quiver::worker {
namespace {

constexpr char kMagic[] = "quiver-fork-1";
// Time the server has to fork and answer with the worker's pid.
constexpr int kAnswerTimeoutMs = 5000;
// Variables that a Python process reads once, at its start: what it imports
// (PYTHONPATH, ...), its hash seed, optimisation level, warning filters, UTF-8
// mode and locale coercion, and its libraries' thread pools. A forked worker
// cannot take other values from its run, so a server started under other values
// serves other runs (ForkServerSocket); the server, given these names when it
// starts (--fixed-at-start), also refuses a request whose values differ from its own.
// TZ is not here: the worker applies it (time.tzset) before user code.
constexpr const char* kKeyVariables[] = {"PYTHONPATH",
                                         "PYTHONHOME",
                                         "PYTHONSAFEPATH",
                                         "PYTHONNOUSERSITE",
                                         "PYTHONUSERBASE",
                                         "VIRTUAL_ENV",
                                         "LD_LIBRARY_PATH",
                                         "LD_PRELOAD",
                                         "PYTHONHASHSEED",
                                         "PYTHONOPTIMIZE",
                                         "PYTHONWARNINGS",
                                         "PYTHONUTF8",
                                         "PYTHONIOENCODING",
                                         "PYTHONDEVMODE",
                                         "PYTHONINTMAXSTRDIGITS",
                                         "PYTHONDONTWRITEBYTECODE",
                                         "LC_ALL",
                                         "LC_CTYPE",
                                         "LANG",
                                         "OPENBLAS_NUM_THREADS",
                                         "OMP_NUM_THREADS",
                                         "MKL_NUM_THREADS"};

constexpr char kDetailTypeId[] = "quiver::worker::ForkServerFailure";

// Carries a ForkServerFailure through arrow::Status, so that callers tell an
// absent server from a failed one by type, not by the message.
class ForkServerFailureDetail : public arrow::StatusDetail {
 public:
  explicit ForkServerFailureDetail(ForkServerFailure failure) : failure_(failure) {}
  const char* type_id() const override { return kDetailTypeId; }
  std::string ToString() const override {
    switch (failure_) {
      case ForkServerFailure::kNotRunning:
        return "fork server not running";
      case ForkServerFailure::kRestarting:
        return "fork server restarting";
      case ForkServerFailure::kFailed:
        break;
    }
    return "fork server failed";
  }
  ForkServerFailure failure() const { return failure_; }

 private:
  ForkServerFailure failure_;
};

arrow::Status WithFailure(const arrow::Status& status, ForkServerFailure failure) {
  return status.WithDetail(std::make_shared<ForkServerFailureDetail>(failure));
}

// The server's answer when its files changed since it started (server.py).
constexpr char kStaleAnswer[] = "error stale:";

std::string Getenv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

arrow::Status CheckPrivate(const std::string& directory) {
  struct stat info {};
  if (::lstat(directory.c_str(), &info) != 0) {
    return arrow::Status::IOError("cannot examine ", directory, ": ", std::strerror(errno));
  }
  if (!S_ISDIR(info.st_mode)) {
    return arrow::Status::IOError(directory, " is not a directory (a symlink or file is refused)");
  }
  if (info.st_uid != ::getuid()) {
    return arrow::Status::IOError(directory, " belongs to uid ", info.st_uid,
                                  ", not to this user; remove it or set QUIVER_FORKSERVER_DIR");
  }
  if ((info.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%o", info.st_mode & 07777);
    return arrow::Status::IOError(directory, " has mode ", mode,
                                  "; it must be 0700 (chmod 700 it)");
  }
  return arrow::Status::OK();
}

uint64_t Fnv1a(const std::string& text, uint64_t hash = 14695981039346656037ULL) {
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ULL;
  return hash;
}

std::string ValueOf(const std::vector<std::string>& environment, const std::string& name) {
  std::string value;
  for (const auto& entry : environment) {
    if (entry.size() > name.size() && entry.compare(0, name.size(), name) == 0 &&
        entry[name.size()] == '=') {
      value = entry.substr(name.size() + 1);
    }
  }
  return value;
}

sockaddr_un SocketAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  return address;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (auto& text : strings) pointers.push_back(text.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Starts `python -m quiver.forkserver` detached: in its own session, not the
// engine's child (a double fork), not killed with the engine. Its output goes
// to a log beside the socket.
arrow::Status StartServer(const std::string& python, const std::string& socket,
                          double idle_timeout_seconds, std::vector<std::string> environment) {
  const std::string log = socket.substr(0, socket.size() - 5) + ".log";
  io::UniqueFd log_fd(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  io::UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!log_fd.valid() || !null_fd.valid()) {
    return arrow::Status::IOError("cannot open ", log,
                                  " for the fork server's output: ", std::strerror(errno));
  }
  const std::string program = ResolveProgram(python);
  // The server refuses requests whose values of these differ from its own: it
  // learns the names here, so that this list is the only one.
  std::string key_variables;
  for (const char* name : kKeyVariables) {
    key_variables += (key_variables.empty() ? "" : ",") + std::string(name);
  }
  std::vector<std::string> arguments = {python,
                                        "-m",
                                        "quiver.forkserver",
                                        "--socket",
                                        socket,
                                        "--idle-timeout",
                                        std::to_string(idle_timeout_seconds),
                                        "--fixed-at-start",
                                        key_variables};
  auto argv = Pointers(arguments);
  auto envp = Pointers(environment);
  const pid_t pid = ::fork();
  if (pid < 0) return arrow::Status::IOError("fork: ", std::strerror(errno));
  if (pid == 0) {
    // Async-signal-safe calls only, up to execve.
    if (::setsid() < 0 || ::fork() != 0) ::_exit(0);
    sigset_t empty;
    sigemptyset(&empty);
    ::sigprocmask(SIG_SETMASK, &empty, nullptr);
    for (int signal_number : {SIGPIPE, SIGTERM, SIGINT, SIGCHLD, SIGHUP}) {
      ::signal(signal_number, SIG_DFL);
    }
    if (::dup2(null_fd.get(), 0) < 0 || ::dup2(log_fd.get(), 1) < 0 ||
        ::dup2(log_fd.get(), 2) < 0 || ::chdir("/") != 0) {
      ::_exit(127);
    }
    if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      for (int fd = 3; fd < 65536; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    ::execve(program.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  return arrow::Status::OK();
}

// The request: a little-endian length, then NUL-separated fields.
std::string EncodeRequest(const std::vector<std::string>& arguments,
                          const std::vector<std::string>& environment) {
  std::string payload = kMagic;
  payload += '\0';
  payload += std::filesystem::current_path().string();
  payload += '\0';
  payload += std::to_string(arguments.size());
  for (const auto& argument : arguments) payload += '\0' + argument;
  for (const auto& entry : environment) payload += '\0' + entry;
  std::string request(4, '\0');
  const auto size = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) request[i] = static_cast<char>((size >> (8 * i)) & 0xff);
  return request + payload;
}

arrow::Status SendRequest(int fd, const std::string& request, const std::vector<int>& fds) {
  size_t sent = 0;
  while (sent < request.size()) {
    iovec part{const_cast<char*>(request.data() + sent), request.size() - sent};
    msghdr message{};
    message.msg_iov = &part;
    message.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)] = {};
    if (sent == 0) {  // the descriptors travel with the first byte
      message.msg_control = control;
      message.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* header = CMSG_FIRSTHDR(&message);
      header->cmsg_level = SOL_SOCKET;
      header->cmsg_type = SCM_RIGHTS;
      header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
    }
    const ssize_t done = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0)
      return arrow::Status::IOError("sending to the fork server: ", std::strerror(errno));
    sent += static_cast<size_t>(done);
  }
  return arrow::Status::OK();
}

// Reads the server's first line: "pid N" or "error TEXT".
arrow::Result<std::string> ReadAnswer(int fd) {
  std::string line;
  while (line.empty() || line.back() != '\n') {
    pollfd entry{fd, POLLIN, 0};
    const int ready = ::poll(&entry, 1, kAnswerTimeoutMs);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return arrow::Status::IOError("the fork server did not answer in time");
    char c = 0;
    const ssize_t got = ::read(fd, &c, 1);  // byte by byte: the exit line follows later
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return arrow::Status::IOError("the fork server closed the connection");
    if (line.size() > 4096) return arrow::Status::IOError("the fork server's answer is too long");
    line += c;
  }
  line.pop_back();
  return line;
}

// Connects to the server at `socket` and checks it runs as this user.
arrow::Result<io::UniqueFd> Connect(const std::string& socket, bool* not_running) {
  io::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return arrow::Status::IOError("socket: ", std::strerror(errno));
  const sockaddr_un address = SocketAddress(socket);
  int result = 0;
  do {
    result = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  } while (result != 0 && errno == EINTR);
  if (result != 0) {
    *not_running = errno == ENOENT || errno == ECONNREFUSED;
    return arrow::Status::IOError("cannot connect to the fork server at ", socket, ": ",
                                  std::strerror(errno));
  }
  ucred peer{};
  socklen_t size = sizeof(peer);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0 ||
      peer.uid != ::getuid()) {
    return arrow::Status::IOError("the fork server at ", socket, " runs as uid ", peer.uid,
                                  ", not as this user; refusing it");
  }
  return fd;
}

}  // namespace

arrow::Result<std::string> ForkServerDirectory(const std::string& requested) {
  std::string directory = requested;
  if (directory.empty()) directory = Getenv("QUIVER_FORKSERVER_DIR");
  if (directory.empty() && !Getenv("XDG_RUNTIME_DIR").empty()) {
    directory = Getenv("XDG_RUNTIME_DIR") + "/quiver";
  }
  if (directory.empty()) directory = "/tmp/quiver-" + std::to_string(::getuid());
  // Resolved once, here: the server runs in "/" and must be given the same path.
  std::error_code error;
  const std::filesystem::path absolute = std::filesystem::absolute(directory, error);
  if (error) {
    return arrow::Status::IOError("cannot resolve the fork server's directory ", directory, ": ",
                                  error.message());
  }
  directory = absolute.lexically_normal().string();
  if (directory.size() > 1 && directory.back() == '/') directory.pop_back();
  if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
    return arrow::Status::IOError("cannot create the fork server's directory ", directory, ": ",
                                  std::strerror(errno));
  }
  ARROW_RETURN_NOT_OK(CheckPrivate(directory));
  return directory;
}

std::string ForkServerSocket(const std::string& directory, const std::string& python,
                             const std::vector<std::string>& environment) {
  uint64_t hash = Fnv1a(python);
  for (const char* name : kKeyVariables) {
    hash = Fnv1a(std::string(name) + "=" + ValueOf(environment, name) + '\0', hash);
  }
  char name[32];
  std::snprintf(name, sizeof(name), "/fs-%016llx.sock", static_cast<unsigned long long>(hash));
  return directory + name;
}

ForkServerFailure ForkServerFailureOf(const arrow::Status& status) {
  const auto& detail = status.detail();
  if (detail == nullptr || std::strcmp(detail->type_id(), kDetailTypeId) != 0) {
    return ForkServerFailure::kFailed;
  }
  return static_cast<const ForkServerFailureDetail&>(*detail).failure();
}

namespace {

arrow::Result<std::unique_ptr<ChildProcess>> ForkWorker(
    const ForkServerSpec& spec, const std::vector<std::string>& arguments,
    const std::map<std::string, std::string>& environment, int64_t log_capacity_bytes,
    int inherited_fd) {
  ARROW_ASSIGN_OR_RAISE(const std::string directory, ForkServerDirectory(spec.directory));
  std::vector<std::string> variables = MergedEnvironment(environment);
  const std::string socket = ForkServerSocket(directory, spec.python, variables);
  constexpr size_t kLongestSocketPath = sizeof(sockaddr_un{}.sun_path) - 1;
  if (socket.size() > kLongestSocketPath) {
    return arrow::Status::IOError("the fork server's socket path ", socket, " is ", socket.size(),
                                  " bytes, over the ", kLongestSocketPath,
                                  " a Unix socket path can hold; set QUIVER_FORKSERVER_DIR to a "
                                  "directory of at most ",
                                  kLongestSocketPath - (socket.size() - directory.size()),
                                  " bytes (e.g. /tmp/quiver-", ::getuid(), ")");
  }
  bool not_running = false;
  auto connected = Connect(socket, &not_running);
  if (!connected.ok()) {
    if (!not_running) return connected.status();
    std::vector<std::string> server_environment;
    for (auto& entry : variables) {
      if (entry.rfind("QUIVER_WORKER_SECRET", 0) != 0) server_environment.push_back(entry);
    }
    ARROW_RETURN_NOT_OK(
        StartServer(spec.python, socket, spec.idle_timeout_seconds, std::move(server_environment)));
    return WithFailure(
        arrow::Status::IOError("no fork server was running; one was started for later runs"),
        ForkServerFailure::kNotRunning);
  }
  io::UniqueFd connection = std::move(*connected);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return arrow::Status::IOError("pipe: ", std::strerror(errno));
  }
  io::UniqueFd read_end(pipe_fds[0]);
  io::UniqueFd write_end(pipe_fds[1]);
  std::vector<int> fds = {write_end.get()};
  if (inherited_fd >= 0) fds.push_back(inherited_fd);
  ARROW_RETURN_NOT_OK(SendRequest(connection.get(), EncodeRequest(arguments, variables), fds));
  write_end.Reset();  // the worker holds the only write end now
  ARROW_ASSIGN_OR_RAISE(const std::string answer, ReadAnswer(connection.get()));
  long pid = 0;
  if (std::sscanf(answer.c_str(), "pid %ld", &pid) != 1 || pid <= 1) {
    const arrow::Status refused =
        arrow::Status::IOError("the fork server refused the worker: ", answer);
    return answer.rfind(kStaleAnswer, 0) == 0 ? WithFailure(refused, ForkServerFailure::kRestarting)
                                              : refused;
  }
  return ChildProcess::Adopt(static_cast<pid_t>(pid), std::move(read_end), log_capacity_bytes,
                             std::move(connection));
}

}  // namespace

arrow::Result<std::unique_ptr<ChildProcess>> SpawnThroughForkServer(
    const ForkServerSpec& spec, const std::vector<std::string>& arguments,
    const std::map<std::string, std::string>& environment, int64_t log_capacity_bytes,
    int inherited_fd) {
  auto spawned = ForkWorker(spec, arguments, environment, log_capacity_bytes, inherited_fd);
  // Every failure says which it is: kFailed unless a path above said otherwise.
  if (!spawned.ok() && spawned.status().detail() == nullptr) {
    return WithFailure(spawned.status(), ForkServerFailure::kFailed);
  }
  return spawned;
}

}  // namespace quiver::worker
