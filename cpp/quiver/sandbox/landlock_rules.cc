#include "quiver/sandbox/landlock_rules.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace quiver::sandbox {
namespace {

// The kernel's ABI, spelled here: the distribution's <linux/landlock.h> may
// predate the network rules and scopes the kernel has.
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

constexpr uint32_t kCreateRulesetVersion = 1U << 0;
constexpr int kRulePathBeneath = 1;
constexpr int kRuleNetPort = 2;

struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

struct __attribute__((packed)) PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
};

struct NetPortAttr {
  uint64_t allowed_access;
  uint64_t port;
};

enum : uint64_t {
  kExecute = 1ULL << 0,
  kWriteFile = 1ULL << 1,
  kReadFile = 1ULL << 2,
  kReadDir = 1ULL << 3,
  kRemoveDir = 1ULL << 4,
  kRemoveFile = 1ULL << 5,
  kMakeChar = 1ULL << 6,
  kMakeDir = 1ULL << 7,
  kMakeReg = 1ULL << 8,
  kMakeSock = 1ULL << 9,
  kMakeFifo = 1ULL << 10,
  kMakeBlock = 1ULL << 11,
  kMakeSym = 1ULL << 12,
  kRefer = 1ULL << 13,     // ABI 2
  kTruncate = 1ULL << 14,  // ABI 3
  kIoctlDev = 1ULL << 15,  // ABI 5
};
constexpr uint64_t kBindTcp = 1ULL << 0;            // ABI 4
constexpr uint64_t kConnectTcp = 1ULL << 1;         // ABI 4
constexpr uint64_t kScopeAbstractUnix = 1ULL << 0;  // ABI 6
constexpr uint64_t kScopeSignal = 1ULL << 1;        // ABI 6

uint64_t HandledFs(int abi) {
  uint64_t rights = (1ULL << 13) - 1;  // ABI 1: bits 0-12
  if (abi >= 2) rights |= kRefer;
  if (abi >= 3) rights |= kTruncate;
  if (abi >= 5) rights |= kIoctlDev;
  return rights;
}

constexpr uint64_t kFileRights = kExecute | kWriteFile | kReadFile | kTruncate | kIoctlDev;

arrow::Status Errno(const std::string& what) {
  return arrow::Status::IOError(what, ": ", std::strerror(errno));
}

// Adds `rights` (cut to what the ABI handles, and to file rights for a file)
// beneath `path`; a path that does not exist is skipped.
arrow::Status AddPath(int ruleset, const std::string& path, uint64_t rights, uint64_t handled) {
  io::UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT || errno == ENOTDIR || errno == EACCES) return arrow::Status::OK();
    return Errno("cannot open " + path + " for a sandbox rule");
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return Errno("cannot stat " + path);
  rights &= handled;
  if (!S_ISDIR(info.st_mode)) rights &= kFileRights;
  PathBeneathAttr rule{rights, fd.get()};
  if (::syscall(SYS_landlock_add_rule, ruleset, kRulePathBeneath, &rule, 0) != 0) {
    return Errno("cannot add the sandbox rule for " + path);
  }
  return arrow::Status::OK();
}

}  // namespace

int LandlockAbi() {
  const long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

arrow::Result<io::UniqueFd> BuildLandlockRuleset(int abi, const LandlockGrants& grants) {
  RulesetAttr attr{HandledFs(abi), abi >= 4 ? kBindTcp | kConnectTcp : 0,
                   abi >= 6 ? kScopeAbstractUnix | kScopeSignal : 0};
  // The attribute's size names the ABI the fields belong to.
  const size_t size = abi >= 6   ? sizeof(RulesetAttr)
                      : abi >= 4 ? offsetof(RulesetAttr, scoped)
                                 : offsetof(RulesetAttr, handled_access_net);
  io::UniqueFd ruleset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, size, 0)));
  if (!ruleset.valid()) return Errno("cannot create the sandbox's Landlock ruleset");
  const uint64_t handled = attr.handled_access_fs;
  const uint64_t read = kExecute | kReadFile | kReadDir;
  for (const auto& path : grants.read_only) {
    ARROW_RETURN_NOT_OK(AddPath(ruleset.get(), path, read, handled));
  }
  for (const auto& path : grants.read_write) {
    ARROW_RETURN_NOT_OK(AddPath(ruleset.get(), path, handled, handled));
  }
  for (const auto& path : grants.device_files) {
    ARROW_RETURN_NOT_OK(AddPath(ruleset.get(), path, kReadFile | kWriteFile | kTruncate, handled));
  }
  for (const auto& path : grants.socket_directories) {
    ARROW_RETURN_NOT_OK(AddPath(ruleset.get(), path, kMakeSock | kRemoveFile, handled));
  }
  if (abi >= 4) {
    for (uint16_t port : grants.bind_ports) {
      NetPortAttr rule{kBindTcp, port};
      if (::syscall(SYS_landlock_add_rule, ruleset.get(), kRuleNetPort, &rule, 0) != 0) {
        return Errno("cannot add the sandbox rule for TCP port " + std::to_string(port));
      }
    }
  }
  return ruleset;
}

int AllowOwnProc(int ruleset_fd) noexcept {
  const int own = ::open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (own < 0) return errno;
  PathBeneathAttr rule{kReadFile | kReadDir, own};
  const long added = ::syscall(SYS_landlock_add_rule, ruleset_fd, kRulePathBeneath, &rule, 0);
  const int error = added != 0 ? errno : 0;
  ::close(own);
  return error;
}

int RestrictSelf(int ruleset_fd) noexcept {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (::syscall(SYS_landlock_restrict_self, ruleset_fd, 0) != 0) return errno;
  return 0;
}

}  // namespace quiver::sandbox
