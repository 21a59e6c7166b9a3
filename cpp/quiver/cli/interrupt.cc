#include "quiver/cli/interrupt.h"

#include <dirent.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

namespace quiver::cli {
namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(50);

// Lock-free atomics are async-signal-safe; the handler touches nothing else.
std::atomic<int> interrupt_signal{0};
std::atomic<int> interrupt_count{0};

void RecordSignal(int signal_number) {
  int expected = 0;
  interrupt_signal.compare_exchange_strong(expected, signal_number);
  interrupt_count.fetch_add(1);
}

// Returns the parent pid recorded in /proc/PID/stat, or -1.
pid_t ParentOf(const char* pid) {
  const std::string path = std::string("/proc/") + pid + "/stat";
  std::FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) return -1;
  char buffer[512];
  const size_t size = std::fread(buffer, 1, sizeof(buffer) - 1, file);
  std::fclose(file);
  buffer[size] = '\0';
  // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so
  // parse from the last ')'.
  const char* end_of_name = std::strrchr(buffer, ')');
  char state = 0;
  int parent = -1;
  if (end_of_name == nullptr || std::sscanf(end_of_name + 1, " %c %d", &state, &parent) != 2) {
    return -1;
  }
  return parent;
}

// Kills the worker processes (our children): a worker stuck inside a UDF would
// not notice its connection closing and would outlive us.
void KillChildProcesses() {
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return;
  const pid_t self = ::getpid();
  while (const dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
    if (ParentOf(entry->d_name) == self) ::kill(std::atoi(entry->d_name), SIGKILL);
  }
  ::closedir(proc);
}

}  // namespace

void InstallInterruptHandlers() {
  struct sigaction action = {};
  action.sa_handler = RecordSignal;
  sigemptyset(&action.sa_mask);
  // No SA_RESTART: a blocking read in the main thread returns EINTR and lets
  // the run notice the interrupt sooner.
  action.sa_flags = 0;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int InterruptSignal() { return interrupt_signal.load(); }

InterruptWatchdog::InterruptWatchdog(std::chrono::milliseconds grace)
    : grace_(grace), thread_([this] { Watch(); }) {}

InterruptWatchdog::~InterruptWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  stop_requested_.notify_all();
  thread_.join();
}

void InterruptWatchdog::SetCleanupPath(std::string path) {
  std::lock_guard<std::mutex> lock(mutex_);
  cleanup_path_ = std::move(path);
}

void InterruptWatchdog::AddCleanupDirectory(std::string path) {
  std::lock_guard<std::mutex> lock(mutex_);
  cleanup_directories_.push_back(std::move(path));
}

void InterruptWatchdog::Watch() {
  std::unique_lock<std::mutex> lock(mutex_);
  std::chrono::steady_clock::time_point interrupted_at;
  while (!stop_) {
    stop_requested_.wait_for(lock, kPollInterval);
    if (stop_) return;
    const int signal_number = InterruptSignal();
    if (signal_number == 0) continue;
    const auto now = std::chrono::steady_clock::now();
    if (interrupted_at == std::chrono::steady_clock::time_point{}) interrupted_at = now;
    if (interrupt_count.load() < 2 && now - interrupted_at < grace_) continue;
    if (!cleanup_path_.empty()) ::unlink(cleanup_path_.c_str());
    KillChildProcesses();
    for (const std::string& directory : cleanup_directories_) {
      std::error_code ignored;
      std::filesystem::remove_all(directory, ignored);
    }
    std::fprintf(stderr, "\nquiver: interrupted\n");
    std::fflush(stderr);
    // _exit, not exit: other threads may be blocked inside the run, and static
    // destructors must not race them. Workers see their connection close and exit.
    ::_exit(128 + signal_number);
  }
}

}  // namespace quiver::cli
