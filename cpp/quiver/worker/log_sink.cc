#include "quiver/worker/log_sink.h"
#include "quiver/io/json_text.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <utility>

namespace quiver::worker {
namespace {

// Returns the length of the UTF-8 sequence at the start of `text`, 0 when it is not one.
size_t Utf8Length(std::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  size_t length = 0;
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) length = 2;
  if (lead >= 0xE0 && lead <= 0xEF) length = 3;
  if (lead >= 0xF0 && lead <= 0xF4) length = 4;
  if (length == 0 || text.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
  }
  // Overlong forms, surrogates and code points past U+10FFFF.
  if (lead == 0xE0 && byte(1) < 0xA0) return 0;
  if (lead == 0xED && byte(1) > 0x9F) return 0;
  if (lead == 0xF0 && byte(1) < 0x90) return 0;
  if (lead == 0xF4 && byte(1) > 0x8F) return 0;
  return length;
}

std::string UtcNow() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[64];
  std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(millis));
  return text;
}

}  // namespace

std::string JsonQuotedRepaired(std::string_view text) {
  std::string out = "\"";
  while (!text.empty()) {
    const char c = text.front();
    const size_t length = Utf8Length(text);
    if (length == 0) {
      out += "\\ufffd";
      text.remove_prefix(1);
      continue;
    }
    if (length > 1) {
      out.append(text.substr(0, length));
    } else {
      io::AppendJsonEscaped(c, &out);
    }
    text.remove_prefix(length);
  }
  return out + "\"";
}

LogLine ParseLogLine(std::string_view line) {
  LogLine parsed;
  parsed.message = std::string(line);
  static constexpr std::string_view kLevels[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"};
  for (std::string_view level : kLevels) {
    if (line.size() <= level.size() || line.substr(0, level.size()) != level ||
        line[level.size()] != ':') {
      continue;
    }
    std::string_view rest = line.substr(level.size() + 1);
    const size_t colon = rest.find(':');
    if (colon == 0 || colon == std::string_view::npos) return parsed;
    const std::string_view logger = rest.substr(0, colon);
    if (logger.find_first_of(" \t") != std::string_view::npos) return parsed;
    parsed.level.clear();
    for (char c : level) parsed.level += static_cast<char>(c - 'A' + 'a');
    parsed.logger = std::string(logger);
    parsed.message = std::string(rest.substr(colon + 1));
    return parsed;
  }
  return parsed;
}

arrow::Result<std::shared_ptr<LogSink>> LogSink::Open(const std::string& path, std::string worker,
                                                      pid_t pid) {
  std::FILE* file = std::fopen(path.c_str(), "ae");
  if (file == nullptr) {
    return arrow::Status::IOError("cannot write the worker log '", path,
                                  "': ", std::strerror(errno),
                                  "; check --log-dir is a writable directory");
  }
  return std::shared_ptr<LogSink>(new LogSink(file, std::move(worker), pid));
}

LogSink::LogSink(std::FILE* file, std::string worker, pid_t pid)
    : file_(file), worker_(std::move(worker)), pid_(pid), udfs_("[]") {}

LogSink::~LogSink() {
  Flush();
  std::fclose(file_);
}

void LogSink::SetUdfs(const std::vector<std::string>& udfs) {
  std::string list = "[";
  for (size_t i = 0; i < udfs.size(); ++i)
    list += (i == 0 ? "" : ", ") + JsonQuotedRepaired(udfs[i]);
  list += "]";
  std::lock_guard<std::mutex> lock(mutex_);
  udfs_ = std::move(list);
  in_flight_.clear();
}

void LogSink::BatchSent(uint64_t sequence) {
  std::lock_guard<std::mutex> lock(mutex_);
  in_flight_.push_back(sequence);
}

void LogSink::BatchAnswered() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!in_flight_.empty()) in_flight_.pop_front();
}

void LogSink::Write(std::string_view bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  while (!bytes.empty()) {
    const size_t newline = bytes.find('\n');
    const size_t room = kMaxLogLineBytes - partial_.size();
    if (newline == std::string_view::npos && bytes.size() < room) {
      partial_.append(bytes);
      break;
    }
    const size_t take = newline == std::string_view::npos ? room : std::min(newline, room);
    partial_.append(bytes.substr(0, take));
    const bool ended = take == newline;
    bytes.remove_prefix(take + (ended ? 1 : 0));
    WriteLine(partial_);
    partial_.clear();
  }
  std::fflush(file_);
}

void LogSink::Flush() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!partial_.empty()) WriteLine(partial_);
  partial_.clear();
  std::fflush(file_);
}

void LogSink::WriteLine(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const LogLine parsed = ParseLogLine(line);
  std::string json =
      "{\"time\": \"" + UtcNow() + "\", \"udfs\": " + udfs_ +
      ", \"worker\": " + JsonQuotedRepaired(worker_) + ", \"pid\": " + std::to_string(pid_) +
      ", \"batch\": " +
      (in_flight_.empty() ? std::string("null") : std::to_string(in_flight_.front())) +
      ", \"level\": \"" + parsed.level + "\", \"logger\": " + JsonQuotedRepaired(parsed.logger) +
      ", \"message\": " + JsonQuotedRepaired(parsed.message) + "}\n";
  std::fwrite(json.data(), 1, json.size(), file_);
}

}  // namespace quiver::worker
