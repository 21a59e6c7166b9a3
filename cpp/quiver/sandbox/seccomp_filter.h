#pragma once

// The sandbox's syscall filter: a seccomp BPF program, built in the engine and
// installed by the worker's child between fork and exec (where only
// async-signal-safe calls may run: installing is one prctl).

#include <linux/filter.h>

#include <cstddef>
#include <vector>

namespace quiver::sandbox {

/// Errno of a socket the filter refuses (the network rule).
inline constexpr int kNetworkErrno = 13;  // EACCES
/// Errno of any other syscall the filter refuses.
inline constexpr int kSyscallErrno = 1;  // EPERM

/// \brief A seccomp filter that refuses, with an errno (never a kill, so the
/// UDF sees an error it can report):
/// - ptrace, mount and umount, unshare, setns, namespaces asked of clone,
///   keyctl and the other key calls, bpf, perf_event_open, process_vm_*,
///   module and kexec loading, pivot_root, chroot, io_uring (it could open
///   sockets past the filter), userfaultfd, open_by_handle_at, reboot, swap:
///   kSyscallErrno;
/// - clone3 with ENOSYS, so that libc falls back to clone, whose flags the
///   filter can read;
/// - socket and socketpair of any family but AF_UNIX, and when `allow_tcp`,
///   TCP over AF_INET and AF_INET6 (which Landlock narrows to the engine's
///   port): kNetworkErrno;
/// - syscalls of another ABI than the engine's (x32, i386 on x86-64).
class SeccompFilter {
 public:
  explicit SeccompFilter(bool allow_tcp);

  /// Installs the filter on the calling thread; needs no_new_privs set.
  /// Async-signal-safe. Returns 0 or the errno.
  int Install() const noexcept;

  size_t size() const { return program_.size(); }

 private:
  std::vector<sock_filter> program_;
};

}  // namespace quiver::sandbox
