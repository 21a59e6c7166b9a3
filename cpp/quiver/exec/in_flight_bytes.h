#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace quiver::exec {

/// \brief The byte bound of a run's in-flight window.
///
/// A batch in flight costs the engine its input plus, once answered, its
/// result until the result is read out. Results are known only when they
/// arrive, so each pending batch is charged the largest input and the largest
/// result seen so far, and until the first result arrives only one batch per
/// worker goes out (a UDF whose result is 100 times its input then costs one
/// such result per worker, not a window of them). A batch always goes when
/// none is pending, so a result larger than the bound still passes, alone.
class InFlightBytes {
 public:
  /// `limit_bytes_per_worker` <= 0: no byte bound (the batch count still holds).
  InFlightBytes(int64_t limit_bytes_per_worker, int workers)
      : limit_(limit_bytes_per_worker * workers), workers_(workers) {}

  /// Returns whether one more batch may be sent while `pending` are unanswered
  /// or unread.
  bool Allows(size_t pending) const {
    if (limit_ <= 0 || pending == 0) return true;
    if (!result_seen_) return pending < static_cast<size_t>(workers_);
    const int64_t per_batch = largest_input_ + largest_result_;
    return static_cast<int64_t>(pending + 1) * per_batch <= limit_;
  }

  /// Records the Arrow buffer bytes of a batch sent.
  void SawInput(int64_t bytes) { largest_input_ = std::max(largest_input_, bytes); }
  /// Records the Arrow buffer bytes of a result received.
  void SawResult(int64_t bytes) {
    result_seen_ = true;
    largest_result_ = std::max(largest_result_, bytes);
  }

 private:
  int64_t limit_;
  int workers_;
  bool result_seen_ = false;
  int64_t largest_input_ = 0;
  int64_t largest_result_ = 0;
};

}  // namespace quiver::exec
