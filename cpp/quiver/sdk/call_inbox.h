#pragma once

// What the reader thread of an Execute call hands to the thread that serves it,
// in quiver.v1's gRPC calls and Spark's streams alike: the requests in order, a
// stop from inside the worker ahead of them, and the end of the requests.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

namespace quiver::sdk {

/// \brief A thread-safe queue of the items of one call. `Item` is what the
/// serving thread handles: a request, or a stop.
template <typename Item>
class CallInbox {
 public:
  /// Queues a request behind the others; `stop`: it stops the call (a cancel),
  /// which StopWaiting reports until StopTaken. Called by the reader.
  void Push(Item item, bool stop = false) {
    std::lock_guard<std::mutex> lock(mutex_);
    // Counted as it arrives, so that a batch ahead of it sees it waiting.
    if (stop) ++stops_waiting_;
    items_.push_back(std::move(item));
    changed_.notify_all();
  }

  /// Queues a stop from inside the worker ahead of the queued requests: batches
  /// not yet answered are dropped.
  void PushStop(Item item) {
    std::lock_guard<std::mutex> lock(mutex_);
    items_.push_front(std::move(item));
    ++stops_waiting_;
    changed_.notify_all();
  }

  /// Says that the requests ended (the reader saw the end of the call).
  void End() {
    std::lock_guard<std::mutex> lock(mutex_);
    ended_ = true;
    changed_.notify_all();
  }

  /// Waits for the next item; nullopt when the requests ended.
  std::optional<Item> Next() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return !items_.empty() || ended_; });
    if (items_.empty()) return std::nullopt;
    Item item = std::move(items_.front());
    items_.pop_front();
    return item;
  }

  /// Whether a stop waits behind the item being handled.
  bool StopWaiting() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stops_waiting_ > 0;
  }

  /// Says that a stop was taken by Next and is being handled.
  void StopTaken() {
    std::lock_guard<std::mutex> lock(mutex_);
    --stops_waiting_;
  }

  /// Waits up to `timeout` for the end of the requests; whether they ended.
  bool WaitForEnd(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, [this] { return ended_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Item> items_;
  int stops_waiting_ = 0;
  bool ended_ = false;  // the reader saw the end of the requests
};

}  // namespace quiver::sdk
