#include "quiver/worker/bounded_log.h"

#include <utility>
#include <vector>

namespace quiver::worker {

BoundedLog::BoundedLog(int64_t capacity_bytes) : capacity_bytes_(capacity_bytes) {}

void BoundedLog::Append(std::string_view bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  total_bytes_ += static_cast<int64_t>(bytes.size());
  text_.append(bytes);
  if (sink_ != nullptr) sink_->Write(bytes);
  const auto capacity = static_cast<size_t>(capacity_bytes_);
  // Trim in large steps so that appending stays amortized O(1).
  if (text_.size() > 2 * capacity) text_.erase(0, text_.size() - capacity);
}

std::string BoundedLog::LastLines(int max_lines, std::string_view indent) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string_view text(text_);
  if (text.size() > static_cast<size_t>(capacity_bytes_)) {
    text.remove_prefix(text.size() - static_cast<size_t>(capacity_bytes_));
  }
  const auto in_section = static_cast<size_t>(total_bytes_ - section_start_);
  if (text.size() > in_section) text.remove_prefix(text.size() - in_section);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  std::vector<std::string_view> lines;
  while (!text.empty() && static_cast<int>(lines.size()) < max_lines) {
    const size_t newline = text.rfind('\n');
    const size_t start = newline == std::string_view::npos ? 0 : newline + 1;
    lines.push_back(text.substr(start));
    text = newline == std::string_view::npos ? std::string_view() : text.substr(0, newline);
  }
  std::string result;
  for (auto line = lines.rbegin(); line != lines.rend(); ++line) {
    result.append(indent).append(*line).append("\n");
  }
  return result;
}

void BoundedLog::StartSection() {
  std::lock_guard<std::mutex> lock(mutex_);
  section_start_ = total_bytes_;
}

void BoundedLog::SetSink(std::shared_ptr<LogSink> sink) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (total_bytes_ == static_cast<int64_t>(text_.size())) sink->Write(text_);
  sink_ = std::move(sink);
}

std::shared_ptr<LogSink> BoundedLog::sink() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sink_;
}

int64_t BoundedLog::total_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return total_bytes_;
}

}  // namespace quiver::worker
