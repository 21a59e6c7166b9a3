#include "quiver/sdk/counter.h"

#include <limits>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace quiver::sdk {
namespace {

// One table for the process: a UDF may name a counter anywhere (a helper, a
// static), and the execution reports the difference of two snapshots.
struct CounterTable {
  std::mutex mutex;
  std::map<std::string, uint64_t> totals;
};

CounterTable& Table() {
  static CounterTable* table = new CounterTable();  // never destroyed: used until exit
  return *table;
}

bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

}  // namespace

bool IsMetricName(const std::string& name) {
  if (name.empty() || !IsLetter(name[0])) return false;
  for (char c : name) {
    if (!IsLetter(c) && !(c >= '0' && c <= '9')) return false;
  }
  return true;
}

Counter::Counter(std::string name) : name_(std::move(name)) {
  if (!IsMetricName(name_)) {
    throw std::invalid_argument("'" + name_ +
                                "' is not a valid metric name: use letters, digits and '_', not "
                                "starting with a digit (e.g. 'rows_skipped')");
  }
  CounterTable& table = Table();
  std::lock_guard<std::mutex> lock(table.mutex);
  if (table.totals.count(name_) == 0 && table.totals.size() >= kMaxCounters) {
    throw std::invalid_argument("counter '" + name_ + "': at most " + std::to_string(kMaxCounters) +
                                " counter names per process");
  }
  table.totals.emplace(name_, 0);
}

void Counter::Add(int64_t n) const {
  if (n < 0) {
    throw std::invalid_argument("counter '" + name_ + "': Add() takes 0 or more, not " +
                                std::to_string(n) + "; counters only grow");
  }
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  CounterTable& table = Table();
  std::lock_guard<std::mutex> lock(table.mutex);
  uint64_t& total = table.totals[name_];
  if (static_cast<uint64_t>(n) > kMax - total) {
    throw std::overflow_error("counter '" + name_ + "' would pass 2^63-1 (it is at " +
                              std::to_string(total) + ", adding " + std::to_string(n) + ")");
  }
  total += static_cast<uint64_t>(n);
}

std::map<std::string, uint64_t> CounterSnapshot() {
  CounterTable& table = Table();
  std::lock_guard<std::mutex> lock(table.mutex);
  return table.totals;
}

std::map<std::string, uint64_t> CountersSince(const std::map<std::string, uint64_t>& before) {
  std::map<std::string, uint64_t> grown;
  for (const auto& [name, total] : CounterSnapshot()) {
    auto found = before.find(name);
    const uint64_t was = found == before.end() ? 0 : found->second;
    if (total > was) grown[name] = total - was;
  }
  return grown;
}

}  // namespace quiver::sdk
