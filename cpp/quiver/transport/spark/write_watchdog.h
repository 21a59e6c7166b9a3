#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "quiver/io/deadline.h"

namespace quiver::transport::spark {

/// \brief Calls `on_expiry` when a write does not finish by its deadline (the
/// worker stopped reading): one thread per connection instead of one per write,
/// since a batch is one write per UDF's stream.
class WriteWatchdog {
 public:
  explicit WriteWatchdog(std::function<void()> on_expiry);
  ~WriteWatchdog();

  /// Watches a write until Disarm(token).
  uint64_t Arm(io::Deadline deadline);
  void Disarm(uint64_t token);

 private:
  void Run();

  std::function<void()> on_expiry_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<uint64_t, io::Deadline> deadlines_;
  uint64_t last_token_ = 0;
  bool stopping_ = false;
  std::thread thread_;  // last: it uses the members above
};

}  // namespace quiver::transport::spark
