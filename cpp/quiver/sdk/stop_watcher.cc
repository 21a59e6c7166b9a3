#include "quiver/sdk/stop_watcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "quiver/io/unique_fd.h"

namespace quiver::sdk {
namespace {

constexpr int kCheckMillis = 250;
constexpr char kSignalByte = 's';
constexpr char kQuitByte = 'q';

// The write end of the watcher's pipe, for the signal handler (one watcher per process).
std::atomic<int> signal_pipe{-1};

extern "C" void OnStopSignal(int) {
  const int saved = errno;
  const int fd = signal_pipe.load();
  if (fd >= 0) (void)!::write(fd, &kSignalByte, 1);
  errno = saved;
}

class StopWatcherImpl : public StopWatcher {
 public:
  StopWatcherImpl(io::UniqueFd read_end, io::UniqueFd write_end, bool watch_parent,
                  Callback on_stop)
      : read_end_(std::move(read_end)),
        write_end_(std::move(write_end)),
        parent_(watch_parent ? ::getppid() : 0),
        on_stop_(std::move(on_stop)) {
    thread_ = std::thread([this] { Watch(); });
  }

  ~StopWatcherImpl() override {
    signal_pipe.store(-1);
    (void)!::write(write_end_.get(), &kQuitByte, 1);
    thread_.join();
  }

 private:
  void Watch() {
    while (true) {
      pollfd entry{read_end_.get(), POLLIN, 0};
      const int ready = ::poll(&entry, 1, kCheckMillis);
      if (ready > 0) {
        char byte = 0;
        if (::read(read_end_.get(), &byte, 1) == 1 && byte == kQuitByte) return;
        if (byte == kSignalByte) Stop("SIGTERM/SIGINT");
      }
      if (parent_ != 0 && ::getppid() != parent_) {
        Stop("the process that started the worker exited");
        parent_ = 0;
      }
    }
  }

  void Stop(const std::string& reason) {
    if (stopped_) return;
    stopped_ = true;
    on_stop_(reason);
  }

  io::UniqueFd read_end_;
  io::UniqueFd write_end_;
  pid_t parent_;
  Callback on_stop_;
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace

arrow::Result<std::unique_ptr<StopWatcher>> StopWatcher::Start(bool watch_parent,
                                                               Callback on_stop) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return arrow::Status::IOError("cannot create the stop watcher's pipe: ", std::strerror(errno));
  }
  io::UniqueFd read_end(fds[0]);
  io::UniqueFd write_end(fds[1]);
  signal_pipe.store(write_end.get());
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  return std::make_unique<StopWatcherImpl>(std::move(read_end), std::move(write_end), watch_parent,
                                           std::move(on_stop));
}

}  // namespace quiver::sdk
