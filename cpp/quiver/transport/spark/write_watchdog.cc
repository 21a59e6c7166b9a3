#include "quiver/transport/spark/write_watchdog.h"

#include <algorithm>
#include <utility>

namespace quiver::transport::spark {

WriteWatchdog::WriteWatchdog(std::function<void()> on_expiry)
    : on_expiry_(std::move(on_expiry)), thread_([this] { Run(); }) {}

WriteWatchdog::~WriteWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

uint64_t WriteWatchdog::Arm(io::Deadline deadline) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t token = ++last_token_;
  deadlines_[token] = deadline;
  changed_.notify_all();
  return token;
}

void WriteWatchdog::Disarm(uint64_t token) {
  std::lock_guard<std::mutex> lock(mutex_);
  deadlines_.erase(token);
}

void WriteWatchdog::Run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    if (deadlines_.empty()) {
      changed_.wait(lock);
      continue;
    }
    io::Deadline earliest = io::kNoDeadline;
    for (const auto& entry : deadlines_) earliest = std::min(earliest, entry.second);
    if (changed_.wait_until(lock, earliest) == std::cv_status::timeout &&
        std::chrono::steady_clock::now() >= earliest) {
      deadlines_.clear();
      lock.unlock();
      on_expiry_();
      lock.lock();
    }
  }
}

}  // namespace quiver::transport::spark
