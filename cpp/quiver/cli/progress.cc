#include "quiver/cli/progress.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "quiver/worker/log_sink.h"

namespace quiver::cli {
namespace {

constexpr auto kRedrawInterval = std::chrono::milliseconds(200);
constexpr auto kJsonInterval = std::chrono::milliseconds(500);

double Seconds(std::chrono::nanoseconds duration) {
  return std::chrono::duration<double>(duration).count();
}

std::string Printf(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), format, value);
  return buffer;
}

// Formats a rate with a k/M/G suffix: 11905 -> "11.9k".
std::string FormatRate(double per_second) {
  if (per_second >= 1e9) return Printf("%.1fG", per_second / 1e9);
  if (per_second >= 1e6) return Printf("%.1fM", per_second / 1e6);
  if (per_second >= 1e3) return Printf("%.1fk", per_second / 1e3);
  return Printf("%.0f", per_second);
}

std::string FormatMegabytesPerSecond(int64_t bytes, std::chrono::nanoseconds elapsed) {
  const double seconds = Seconds(elapsed);
  if (seconds <= 0) return "- MB/s";
  return Printf("%.1f MB/s", static_cast<double>(bytes) / 1e6 / seconds);
}

// Formats a remaining time as a clock: "0:42", "1:02:03".
std::string FormatClock(double seconds) {
  const auto total = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  char buffer[64];
  if (total >= 3600) {
    std::snprintf(buffer, sizeof(buffer), "%" PRId64 ":%02d:%02d", total / 3600,
                  static_cast<int>(total / 60 % 60), static_cast<int>(total % 60));
  } else {
    std::snprintf(buffer, sizeof(buffer), "%d:%02d", static_cast<int>(total / 60),
                  static_cast<int>(total % 60));
  }
  return buffer;
}

}  // namespace

std::string FormatCount(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

std::string FormatDuration(std::chrono::nanoseconds duration) {
  const double seconds = Seconds(duration);
  if (seconds < 0.01) return Printf("%.1f ms", seconds * 1e3);
  if (seconds < 1) return Printf("%.0f ms", seconds * 1e3);
  if (seconds < 10) return Printf("%.2f s", seconds);
  if (seconds < 60) return Printf("%.1f s", seconds);
  const auto whole = static_cast<int64_t>(seconds);
  char buffer[64];
  if (whole < 3600) {
    std::snprintf(buffer, sizeof(buffer), "%d min %02d s", static_cast<int>(whole / 60),
                  static_cast<int>(whole % 60));
  } else {
    std::snprintf(buffer, sizeof(buffer), "%" PRId64 " h %02d min", whole / 3600,
                  static_cast<int>(whole / 60 % 60));
  }
  return buffer;
}

std::string FormatProgressLine(const ProgressFigures& figures) {
  std::string line = "quiver: " + FormatCount(figures.rows);
  const bool known_total = figures.total_rows.has_value() && *figures.total_rows > 0;
  if (known_total) {
    const double fraction =
        static_cast<double>(figures.rows) / static_cast<double>(*figures.total_rows);
    line += " / " + FormatCount(*figures.total_rows) + " rows (" +
            Printf("%.0f", std::min(100.0, fraction * 100)) + "%)";
  } else {
    line += " rows";
  }
  const double seconds = Seconds(figures.elapsed);
  if (seconds > 0) {
    line += "  " + FormatRate(static_cast<double>(figures.rows) / seconds) + " rows/s";
  }
  line += "  " + FormatMegabytesPerSecond(figures.bytes, figures.elapsed);
  if (known_total && figures.rows > 0 && figures.rows < *figures.total_rows) {
    const double per_row = Seconds(figures.elapsed) / static_cast<double>(figures.rows);
    line +=
        "  ETA " + FormatClock(per_row * static_cast<double>(*figures.total_rows - figures.rows));
  }
  const std::string busiest = BusiestGroup(figures.workers);
  if (!busiest.empty()) line += "  busiest: " + busiest;
  return line;
}

std::string BusiestGroup(const std::vector<worker::WorkerState>& workers) {
  std::map<std::string, int64_t> in_flight;
  for (const auto& state : workers) {
    std::string names;
    for (const auto& udf : state.udfs) names += (names.empty() ? "" : ",") + udf;
    in_flight[names] += state.in_flight;
  }
  if (in_flight.size() < 2) return "";
  auto busiest = in_flight.begin();
  for (auto group = in_flight.begin(); group != in_flight.end(); ++group) {
    if (group->second > busiest->second) busiest = group;
  }
  return busiest->first;
}

std::string FormatProgressJson(const ProgressFigures& figures, bool final) {
  const double seconds = Seconds(figures.elapsed);
  std::string out =
      "{\"rows\": " + std::to_string(figures.rows) +
      ", \"total_rows\": " + (figures.total_rows ? std::to_string(*figures.total_rows) : "null") +
      ", \"bytes\": " + std::to_string(figures.bytes) +
      ", \"elapsed_seconds\": " + Printf("%.3f", seconds) + ", \"rows_per_second\": " +
      Printf("%.1f", seconds > 0 ? static_cast<double>(figures.rows) / seconds : 0) +
      ", \"final\": " + (final ? "true" : "false") + ", \"workers\": [";
  for (size_t i = 0; i < figures.workers.size(); ++i) {
    const auto& state = figures.workers[i];
    out += i == 0 ? "" : ", ";
    out += "{\"worker\": " + worker::JsonQuotedRepaired(state.worker) +
           ", \"pid\": " + std::to_string(state.pid) + ", \"udfs\": [";
    for (size_t u = 0; u < state.udfs.size(); ++u) {
      out += (u == 0 ? "" : ", ") + worker::JsonQuotedRepaired(state.udfs[u]);
    }
    out += "], \"state\": \"" + std::string(state.in_flight > 0 ? "computing" : "idle") +
           "\", \"batch\": " + (state.in_flight > 0 ? std::to_string(state.batch) : "null") +
           ", \"seconds\": " +
           Printf("%.3f", state.in_flight > 0 ? Seconds(state.computing_for) : 0.0) +
           ", \"in_flight\": " + std::to_string(state.in_flight) +
           ", \"rss_bytes\": " + std::to_string(state.rss_bytes) + "}";
  }
  return out + "]}";
}

std::string FormatWorkerLine(const worker::WorkerState& state) {
  std::string udfs;
  for (const auto& udf : state.udfs) udfs += (udfs.empty() ? "" : ",") + udf;
  std::string line = "  " + state.worker + "  " + udfs + "  ";
  if (state.in_flight > 0) {
    line += "computing batch " + std::to_string(state.batch) + " for " +
            FormatDuration(state.computing_for);
    if (state.in_flight > 1) line += "  (" + std::to_string(state.in_flight) + " in flight)";
  } else {
    line += "idle";
  }
  return line + "  rss " + Printf("%.1f MiB", static_cast<double>(state.rss_bytes) / (1 << 20));
}

std::string FormatSummary(const RunSummary& summary) {
  const double seconds = Seconds(summary.elapsed);
  const double rows_per_second = seconds > 0 ? static_cast<double>(summary.rows) / seconds : 0;
  std::string out = "quiver: done in " + FormatDuration(summary.elapsed) + "\n";
  out += "  rows     " + FormatCount(summary.rows) + " in " + FormatCount(summary.batches) +
         (summary.batches == 1 ? " batch" : " batches") + " (" + FormatRate(rows_per_second) +
         " rows/s, " + FormatMegabytesPerSecond(summary.bytes, summary.elapsed) + ")\n";
  out += "  in UDFs  " + FormatDuration(summary.worker_udf_time) + " over " +
         std::to_string(summary.workers) + (summary.workers == 1 ? " worker" : " workers") + "\n";
  out += FormatFailedRows(summary.failed_rows);
  out += "  output   " +
         (summary.output.empty() ? std::string("discarded (noop)") : summary.output) + "\n";
  return out;
}

bool ProgressDisplay::Due(std::chrono::steady_clock::time_point now) const {
  if (!enabled_) return false;
  return !drawn_ ||
         now - last_draw_ >= (mode_ == ProgressMode::kJson ? kJsonInterval : kRedrawInterval);
}

void ProgressDisplay::Update(const ProgressFigures& figures,
                             std::chrono::steady_clock::time_point now) {
  if (!Due(now)) return;
  if (mode_ == ProgressMode::kJson) {
    std::fprintf(out_, "%s\n", FormatProgressJson(figures, false).c_str());
    std::fflush(out_);
    drawn_ = true;
    last_draw_ = now;
    return;
  }
  if (mode_ == ProgressMode::kLive) {
    // Back to the first line drawn, then each line over the old one; \033[J
    // erases what is left below (a worker that went away).
    std::string text = "\r";
    if (lines_above_ > 0) text += "\033[" + std::to_string(lines_above_) + "A";
    text += FormatProgressLine(figures) + "\033[K";
    for (const auto& state : figures.workers) text += "\n" + FormatWorkerLine(state) + "\033[K";
    text += "\033[J";
    lines_above_ = static_cast<int>(figures.workers.size());
    std::fputs(text.c_str(), out_);
    std::fflush(out_);
    drawn_ = true;
    last_draw_ = now;
    return;
  }
  // \033[K erases what a longer previous line left to the right.
  std::fprintf(out_, "\r%s\033[K", FormatProgressLine(figures).c_str());
  std::fflush(out_);
  drawn_ = true;
  last_draw_ = now;
}

void ProgressDisplay::Finish(const ProgressFigures& figures) {
  if (!enabled_ || mode_ != ProgressMode::kJson) return;
  std::fprintf(out_, "%s\n", FormatProgressJson(figures, true).c_str());
  std::fflush(out_);
}

void ProgressDisplay::Clear() {
  if (!enabled_ || !drawn_ || mode_ == ProgressMode::kJson) return;
  std::string text = "\r";
  if (lines_above_ > 0) text += "\033[" + std::to_string(lines_above_) + "A";
  // \033[J erases the worker lines below too; the lone line needs only \033[K.
  std::fputs((text + (mode_ == ProgressMode::kLive ? "\033[J" : "\033[K")).c_str(), out_);
  std::fflush(out_);
  drawn_ = false;
  lines_above_ = 0;
}

}  // namespace quiver::cli
