#include "quiver/worker/memory_cap.h"

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <arrow/status.h>

namespace quiver::worker {
namespace {

std::string FormatMiB(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.0f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

// The multiplier of a size suffix ("", "K", "MB", "GiB", ...), or 0 when unknown.
int64_t SuffixMultiplier(std::string suffix) {
  for (auto& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (suffix.size() == 3 && suffix.substr(1) == "IB") suffix.resize(1);
  if (suffix.size() == 2 && suffix[1] == 'B') suffix.resize(1);
  if (suffix.empty() || suffix == "B") return 1;
  const std::string units = "KMGT";
  const size_t power = units.find(suffix);
  if (suffix.size() != 1 || power == std::string::npos) return 0;
  return int64_t{1} << (10 * (power + 1));
}

}  // namespace

arrow::Result<int64_t> ParseByteSize(std::string_view text) {
  const std::string input(text);
  size_t digits_end = 0;
  while (
      digits_end < input.size() &&
      (std::isdigit(static_cast<unsigned char>(input[digits_end])) || input[digits_end] == '.')) {
    ++digits_end;
  }
  const int64_t multiplier = SuffixMultiplier(input.substr(digits_end));
  const std::string digits = input.substr(0, digits_end);
  char* parsed_end = nullptr;
  const double number = std::strtod(digits.c_str(), &parsed_end);
  if (digits.empty() || multiplier == 0 || parsed_end != digits.c_str() + digits.size()) {
    return arrow::Status::Invalid("'", input,
                                  "' is not a size: give bytes or a number with K, M, G or T "
                                  "(powers of 1024), e.g. 512M or 2G");
  }
  const double bytes = std::floor(number * static_cast<double>(multiplier));
  if (bytes < 1 || bytes > 9.0e18) {
    return arrow::Status::Invalid("size '", input, "' is out of range (1 byte to 8 EiB)");
  }
  return static_cast<int64_t>(bytes);
}

arrow::Result<int64_t> ResidentBytes(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  int64_t total_pages = 0;
  int64_t resident_pages = 0;
  if (!(statm >> total_pages >> resident_pages)) {
    return arrow::Status::IOError("cannot read the memory of process ", pid, ": it has ended");
  }
  return resident_pages * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

arrow::Result<int64_t> TreeResidentBytes(pid_t pid) {
  ARROW_ASSIGN_OR_RAISE(int64_t total, ResidentBytes(pid));
  std::vector<pid_t> pending = {pid};
  std::set<pid_t> seen = {pid};
  while (!pending.empty()) {
    const pid_t parent = pending.back();
    pending.pop_back();
    std::error_code error;
    const std::string tasks = "/proc/" + std::to_string(parent) + "/task";
    for (const auto& task : std::filesystem::directory_iterator(tasks, error)) {
      std::ifstream children(task.path() / "children");
      pid_t child = 0;
      while (children >> child) {
        if (!seen.insert(child).second) continue;
        auto resident = ResidentBytes(child);  // a child may end meanwhile
        if (resident.ok()) total += *resident;
        pending.push_back(child);
      }
    }
  }
  return total;
}

MemoryCap::MemoryCap(pid_t pid, int64_t limit_bytes, std::chrono::milliseconds interval)
    : pid_(pid), limit_bytes_(limit_bytes), interval_(interval) {
  watcher_ = std::thread([this] { Watch(); });
}

MemoryCap::~MemoryCap() { Stop(); }

void MemoryCap::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  std::lock_guard<std::mutex> join_lock(join_mutex_);
  if (watcher_.joinable()) watcher_.join();
}

std::optional<int64_t> MemoryCap::exceeded() const {
  const int64_t at = exceeded_at_.load();
  if (at < 0) return std::nullopt;
  return at;
}

std::string MemoryCap::Explanation() const {
  const auto at = exceeded();
  if (!at) return "";
  return "the engine stopped it: its resident memory reached " + FormatMiB(*at) +
         ", over its cap of " + FormatMiB(limit_bytes_) + " (--worker-memory " +
         std::to_string(limit_bytes_) + " bytes)";
}

void MemoryCap::Watch() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, interval_, [this] { return stopping_; })) {
    auto resident = TreeResidentBytes(pid_);
    if (!resident.ok()) return;  // ended: nothing left to watch
    if (*resident <= limit_bytes_) continue;
    exceeded_at_ = *resident;
    // Its own group, as the engine starts it, so that what it started goes too.
    if (::kill(-pid_, SIGKILL) != 0) ::kill(pid_, SIGKILL);
    return;
  }
}

}  // namespace quiver::worker
