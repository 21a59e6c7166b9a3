#include "quiver/sandbox/seccomp_filter.h"

#include <linux/audit.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstddef>
#include <map>
#include <string>

namespace quiver::sandbox {
namespace {

#if defined(__x86_64__)
constexpr uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kArch = AUDIT_ARCH_AARCH64;
#else
#error "the sandbox's seccomp filter knows x86-64 and aarch64 only"
#endif

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

// Namespace flags of clone: a worker may start threads and processes, not
// new namespaces (which would undo the file system and network rules).
constexpr uint32_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
                                     CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;

constexpr long kDenied[] = {
    SYS_ptrace,
    SYS_mount,
    SYS_umount2,
    SYS_unshare,
    SYS_setns,
    SYS_keyctl,
    SYS_add_key,
    SYS_request_key,
    SYS_bpf,
    SYS_perf_event_open,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_kexec_load,
    SYS_kexec_file_load,
    SYS_pivot_root,
    SYS_chroot,
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_io_uring_register,
    SYS_userfaultfd,
    SYS_open_by_handle_at,
    SYS_name_to_handle_at,
    SYS_reboot,
    SYS_swapon,
    SYS_swapoff,
    SYS_fsopen,
    SYS_fsmount,
    SYS_move_mount,
    SYS_open_tree,
};

constexpr uint32_t Errno(int error) {
  return SECCOMP_RET_ERRNO | (static_cast<uint32_t>(error) & SECCOMP_RET_DATA);
}

constexpr uint32_t ArgLow(int index) {
  // The low 32 bits of a 64-bit argument (both arches are little-endian).
  return static_cast<uint32_t>(offsetof(seccomp_data, args) + 8 * index);
}

// A little assembler: jumps name labels, resolved once the program is whole
// (BPF jumps are relative and forward only).
class Assembler {
 public:
  void Load(uint32_t offset) { Emit(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offset)); }
  void And(uint32_t mask) { Emit(BPF_STMT(BPF_ALU | BPF_AND | BPF_K, mask)); }
  void Return(uint32_t action) { Emit(BPF_STMT(BPF_RET | BPF_K, action)); }
  // if (A == value) goto if_equal else goto otherwise ("" falls through).
  void JumpIfEqual(uint32_t value, const std::string& if_equal, const std::string& otherwise = "") {
    Jump(BPF_JEQ, value, if_equal, otherwise);
  }
  void JumpIfAtLeast(uint32_t value, const std::string& if_true) {
    Jump(BPF_JGE, value, if_true, "");
  }
  void JumpIfAnyBit(uint32_t bits, const std::string& if_true) {
    Jump(BPF_JSET, bits, if_true, "");
  }
  void Label(const std::string& name) { labels_[name] = program_.size(); }

  std::vector<sock_filter> Finish() {
    for (const auto& [index, targets] : jumps_) {
      program_[index].jt = Offset(index, targets.first);
      program_[index].jf = Offset(index, targets.second);
    }
    return program_;
  }

 private:
  void Emit(sock_filter instruction) { program_.push_back(instruction); }
  void Jump(uint16_t kind, uint32_t value, const std::string& if_true,
            const std::string& if_false) {
    jumps_[program_.size()] = {if_true, if_false};
    Emit(BPF_JUMP(BPF_JMP | kind | BPF_K, value, 0, 0));
  }
  uint8_t Offset(size_t from, const std::string& label) const {
    if (label.empty()) return 0;
    // Every label is ahead of its jumps and within 255 instructions (the
    // program is small), so the cast is exact.
    return static_cast<uint8_t>(labels_.at(label) - from - 1);
  }

  std::vector<sock_filter> program_;
  std::map<std::string, size_t> labels_;
  std::map<size_t, std::pair<std::string, std::string>> jumps_;
};

}  // namespace

SeccompFilter::SeccompFilter(bool allow_tcp) {
  Assembler code;
  code.Load(offsetof(seccomp_data, arch));
  code.JumpIfEqual(kArch, "", "deny");
  code.Load(offsetof(seccomp_data, nr));
#if defined(__x86_64__)
  constexpr uint32_t kX32Bit = 0x40000000;  // x32 syscalls: numbers with this bit
  code.JumpIfAtLeast(kX32Bit, "deny");
#endif
  for (long number : kDenied) code.JumpIfEqual(static_cast<uint32_t>(number), "deny");
  code.JumpIfEqual(SYS_clone3, "no_such_call");
  code.JumpIfEqual(SYS_clone, "clone");
  code.JumpIfEqual(SYS_socket, "socket");
  code.JumpIfEqual(SYS_socketpair, "socketpair");
  code.Return(SECCOMP_RET_ALLOW);

  code.Label("clone");
  code.Load(ArgLow(0));
  code.JumpIfAnyBit(kNamespaceFlags, "deny");
  code.Return(SECCOMP_RET_ALLOW);

  code.Label("socketpair");
  code.Load(ArgLow(0));
  code.JumpIfEqual(AF_UNIX, "allow", "refuse_network");

  code.Label("socket");
  code.Load(ArgLow(0));
  code.JumpIfEqual(AF_UNIX, "allow");
  if (allow_tcp) {
    code.JumpIfEqual(AF_INET, "inet");
    code.JumpIfEqual(AF_INET6, "inet", "refuse_network");
    code.Label("inet");
    code.Load(ArgLow(1));
    code.And(0xf);  // SOCK_TYPE_MASK: without SOCK_NONBLOCK and SOCK_CLOEXEC
    code.JumpIfEqual(SOCK_STREAM, "", "refuse_network");
    code.Load(ArgLow(2));
    code.JumpIfEqual(0, "allow");
    code.JumpIfEqual(IPPROTO_TCP, "allow");
  }
  code.Label("refuse_network");
  code.Return(Errno(kNetworkErrno));
  code.Label("allow");
  code.Return(SECCOMP_RET_ALLOW);
  code.Label("no_such_call");
  code.Return(Errno(ENOSYS));
  code.Label("deny");
  code.Return(Errno(kSyscallErrno));
  program_ = code.Finish();
}

int SeccompFilter::Install() const noexcept {
  sock_fprog program{static_cast<unsigned short>(program_.size()),
                     const_cast<sock_filter*>(program_.data())};
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) return errno;
  return 0;
}

}  // namespace quiver::sandbox
