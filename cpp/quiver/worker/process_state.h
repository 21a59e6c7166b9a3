#pragma once

#include <sys/types.h>

#include <string>

namespace quiver::worker {

/// Says what a live process is doing, from /proc: its state, the kernel function
/// it waits in, and the CPU it has used, e.g. "it was sleeping (in pipe_read)
/// after 0.31 s of CPU". Told when a worker is stopped for not starting in time:
/// a process that used almost no CPU waited on something (a pipe, a lock); one
/// that used seconds was starved or busy. Empty when /proc has no such process.
std::string DescribeProcessState(pid_t pid);

}  // namespace quiver::worker
