#include "quiver/cli/metrics_report.h"

#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <vector>

#include "quiver/cli/progress.h"
#include "quiver/io/json_text.h"

namespace quiver::cli {
namespace {

std::string FormatBytes(int64_t bytes) {
  char buffer[32];
  const double value = static_cast<double>(bytes);
  if (bytes >= (int64_t{1} << 30)) {
    std::snprintf(buffer, sizeof(buffer), "%.1f GiB", value / (1 << 30));
  } else if (bytes >= (int64_t{1} << 20)) {
    std::snprintf(buffer, sizeof(buffer), "%.1f MiB", value / (1 << 20));
  } else if (bytes >= 1024) {
    std::snprintf(buffer, sizeof(buffer), "%.1f KiB", value / 1024);
  } else {
    std::snprintf(buffer, sizeof(buffer), "%" PRId64 " B", bytes);
  }
  return buffer;
}

std::string Names(const std::vector<std::string>& udfs) {
  std::string names;
  for (const auto& udf : udfs) names += (names.empty() ? "" : ",") + udf;
  return names;
}

std::string Pad(const std::string& text, size_t width) {
  return text.size() >= width ? text + " " : text + std::string(width - text.size(), ' ');
}

std::string PadLeft(const std::string& text, size_t width) {
  return text.size() >= width ? " " + text : std::string(width - text.size(), ' ') + text;
}

std::string Row(const std::string& label, const exec::WorkerMetrics& m) {
  return "  " + Pad(label, 24) + PadLeft(FormatCount(m.rows_in), 12) +
         PadLeft(FormatCount(m.rows_out), 12) + PadLeft(FormatCount(m.batches), 9) +
         PadLeft(FormatBytes(m.bytes_in), 11) + PadLeft(FormatBytes(m.bytes_out), 11) +
         PadLeft(FormatDuration(std::chrono::nanoseconds(m.udf_nanos)), 10) +
         PadLeft(FormatDuration(std::chrono::nanoseconds(m.codec_nanos)), 10) +
         PadLeft(FormatDuration(std::chrono::nanoseconds(m.cpu_nanos)), 10) +
         PadLeft(FormatDuration(std::chrono::nanoseconds(m.wait_nanos)), 10) +
         PadLeft(FormatBytes(m.peak_rss_bytes), 11) + "\n";
}

std::string JsonCounters(const std::map<std::string, int64_t>& counters) {
  std::string out = "{";
  for (const auto& [name, value] : counters) {
    out += (out.size() > 1 ? ", " : "") + io::JsonQuoted(name) + ": " + std::to_string(value);
  }
  return out + "}";
}

std::string JsonFigures(const exec::WorkerMetrics& m) {
  return "\"batches\": " + std::to_string(m.batches) +
         ", \"rows_in\": " + std::to_string(m.rows_in) +
         ", \"rows_out\": " + std::to_string(m.rows_out) +
         ", \"bytes_in\": " + std::to_string(m.bytes_in) +
         ", \"bytes_out\": " + std::to_string(m.bytes_out) +
         ", \"udf_nanos\": " + std::to_string(m.udf_nanos) +
         ", \"codec_nanos\": " + std::to_string(m.codec_nanos) +
         ", \"wait_nanos\": " + std::to_string(m.wait_nanos) +
         ", \"cpu_nanos\": " + std::to_string(m.cpu_nanos) +
         ", \"peak_rss_bytes\": " + std::to_string(m.peak_rss_bytes) +
         ", \"counters\": " + JsonCounters(m.counters);
}

int64_t Nanos(std::chrono::nanoseconds duration) { return duration.count(); }

}  // namespace

std::string FormatMetricsTable(const exec::UdfRunMetrics& metrics, bool per_worker) {
  std::string out = "  " + Pad("udfs", 24) + PadLeft("rows in", 12) + PadLeft("rows out", 12) +
                    PadLeft("batches", 9) + PadLeft("bytes in", 11) + PadLeft("bytes out", 11) +
                    PadLeft("udf", 10) + PadLeft("codec", 10) + PadLeft("cpu", 10) +
                    PadLeft("wait", 10) + PadLeft("peak rss", 11) + "\n";
  std::string counters;
  for (const auto& group : metrics.groups) {
    const auto total = group.Total();
    out += Row(Names(group.udfs), total);
    if (per_worker) {
      for (const auto& worker : group.workers) out += Row("  " + worker.worker, worker);
    }
    for (const auto& [name, value] : total.counters) {
      counters +=
          "  counter  " + name + " = " + FormatCount(value) + " (" + Names(group.udfs) + ")\n";
    }
  }
  return out + counters;
}

std::string MetricsJson(const exec::UdfRunMetrics& metrics, const EngineTimes& engine) {
  std::string out = "{\n  \"elapsed_nanos\": " + std::to_string(Nanos(engine.elapsed)) +
                    ",\n  \"read_nanos\": " + std::to_string(Nanos(engine.read)) +
                    ",\n  \"write_nanos\": " + std::to_string(Nanos(engine.write)) +
                    ",\n  \"groups\": [";
  for (size_t g = 0; g < metrics.groups.size(); ++g) {
    const auto& group = metrics.groups[g];
    out += g == 0 ? "\n" : ",\n";
    out += "    {\"udfs\": [";
    for (size_t i = 0; i < group.udfs.size(); ++i) {
      out += (i == 0 ? "" : ", ") + io::JsonQuoted(group.udfs[i]);
    }
    out += "], " + JsonFigures(group.Total()) + ",\n     \"workers\": [";
    for (size_t w = 0; w < group.workers.size(); ++w) {
      out += (w == 0 ? "\n" : ",\n");
      out += "       {\"worker\": " + io::JsonQuoted(group.workers[w].worker) + ", " +
             JsonFigures(group.workers[w]) + "}";
    }
    out += "]}";
  }
  return out + "\n  ]\n}\n";
}

arrow::Status CheckMetricsPath(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::path file(path);
  if (fs::is_directory(file, error)) {
    return arrow::Status::Invalid("--metrics ", path, " is a directory; name a file in it");
  }
  const fs::path directory = file.has_parent_path() ? file.parent_path() : fs::path(".");
  if (!fs::is_directory(directory, error)) {
    return arrow::Status::Invalid("--metrics ", path, ": the directory ", directory.string(),
                                  " does not exist; create it or name another file");
  }
  if (fs::exists(file, error) ? ::access(path.c_str(), W_OK) != 0
                              : ::access(directory.c_str(), W_OK | X_OK) != 0) {
    return arrow::Status::Invalid("--metrics ", path, " cannot be written (", std::strerror(errno),
                                  "); name a file you may write");
  }
  return arrow::Status::OK();
}

arrow::Status WriteMetricsFile(const std::string& path, const std::string& json) {
  std::FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) {
    return arrow::Status::IOError("writing the metrics to ", path, ": ", std::strerror(errno));
  }
  const bool written = std::fwrite(json.data(), 1, json.size(), file) == json.size();
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) {
    return arrow::Status::IOError("writing the metrics to ", path, ": ", std::strerror(errno));
  }
  return arrow::Status::OK();
}

}  // namespace quiver::cli
