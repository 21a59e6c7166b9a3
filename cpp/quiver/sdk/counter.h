#pragma once

// A UDF's own counters (docs/metrics.md), the C++ SDK's side of Python's
// quiver.metrics.counter. Inside a UDF's body:
//
//   quiver::sdk::Counter("rows_skipped").Add(skipped);
//
// The worker reports what every counter grew by during an execution in the
// protocol's Metrics.counters (quiver.v1) or as `counter.NAME` keys of the
// Spark dialect's metrics map; the engine sums them over workers and batches.

#include <cstdint>
#include <map>
#include <string>

namespace quiver::sdk {

/// Most counter names one process may hold; the engine refuses more per execution.
inline constexpr size_t kMaxCounters = 256;

/// Tells whether `name` can name a counter: `[a-zA-Z_][a-zA-Z0-9_]*`.
bool IsMetricName(const std::string& name);

/// \brief A named count that only grows, shared by every thread of the process.
///
/// Constructing one with a bad name, or the 257th name, throws
/// std::invalid_argument; inside a UDF that fails the batch as a UserError
/// naming the UDF.
class Counter {
 public:
  explicit Counter(std::string name);

  /// Adds `n` (0 or more); throws std::invalid_argument for a negative `n` and
  /// std::overflow_error when the total would pass 2^63-1.
  void Add(int64_t n = 1) const;

  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

/// Every counter's total so far in this process.
std::map<std::string, uint64_t> CounterSnapshot();

/// What every counter grew by since `before` (a CounterSnapshot), without 0s.
std::map<std::string, uint64_t> CountersSince(const std::map<std::string, uint64_t>& before);

}  // namespace quiver::sdk
