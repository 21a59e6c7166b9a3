#include "quiver/worker/worker_activity.h"

#include <time.h>

#include <algorithm>
#include <utility>

#include "quiver/worker/memory_cap.h"

namespace quiver::worker {
namespace {

// The live executions; each unregisters itself before it is destroyed.
struct Registry {
  std::mutex mutex;
  std::vector<const WorkerActivity*> live;
};

Registry& TheRegistry() {
  static Registry* registry = new Registry();  // never destroyed: outlives every worker
  return *registry;
}

}  // namespace

WorkerActivity::WorkerActivity(std::string worker, pid_t pid, std::vector<std::string> udfs)
    : worker_(std::move(worker)), pid_(pid), udfs_(std::move(udfs)) {
  Registry& registry = TheRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  registry.live.push_back(this);
}

WorkerActivity::~WorkerActivity() {
  Registry& registry = TheRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  registry.live.erase(std::remove(registry.live.begin(), registry.live.end(), this),
                      registry.live.end());
}

void WorkerActivity::BatchSent(uint64_t sequence) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (in_flight_.empty()) front_since_ = std::chrono::steady_clock::now();
  in_flight_.push_back(sequence);
}

void WorkerActivity::BatchAnswered() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (in_flight_.empty()) return;
  in_flight_.pop_front();
  front_since_ = std::chrono::steady_clock::now();  // the next one (if any) starts now
}

WorkerState WorkerActivity::State(std::chrono::steady_clock::time_point now) const {
  WorkerState state;
  state.worker = worker_;
  state.pid = pid_;
  state.udfs = udfs_;
  state.in_flight = static_cast<int64_t>(in_flight_.size());
  if (!in_flight_.empty()) {
    state.batch = in_flight_.front();
    state.computing_for = now - front_since_;
  }
  return state;
}

std::vector<WorkerState> WorkerActivity::Snapshot() {
  std::vector<WorkerState> states;
  const auto now = std::chrono::steady_clock::now();
  {
    Registry& registry = TheRegistry();
    std::lock_guard<std::mutex> lock(registry.mutex);
    for (const WorkerActivity* activity : registry.live) {
      std::lock_guard<std::mutex> own(activity->mutex_);
      states.push_back(activity->State(now));
    }
  }
  // Read outside the locks: /proc may be slow, and the pid may be gone by now.
  for (auto& state : states) {
    if (state.pid <= 0) continue;
    auto resident = TreeResidentBytes(state.pid);
    state.rss_bytes = resident.ok() ? *resident : 0;
  }
  return states;
}

int64_t ProcessCpuNanos(pid_t pid) {
  if (pid <= 0) return -1;
  // The process's CPU clock: one system call, nanoseconds, where /proc/PID/stat
  // costs a file read and counts in 10 ms ticks.
  clockid_t clock = 0;
  if (::clock_getcpuclockid(pid, &clock) != 0) return -1;
  timespec used{};
  if (::clock_gettime(clock, &used) != 0) return -1;
  return static_cast<int64_t>(used.tv_sec) * 1000000000 + used.tv_nsec;
}

}  // namespace quiver::worker
