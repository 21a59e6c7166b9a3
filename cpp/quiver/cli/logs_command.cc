#include "quiver/cli/logs_command.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string_view>
#include <system_error>
#include <utility>

namespace quiver::cli {
namespace {

constexpr char kLogsFooter[] =
    R"(DIR is a directory a run wrote with 'quiver run ... --log-dir DIR': one file per
worker (worker-ID-PID.jsonl), one JSON object per line with time, udfs, worker,
pid, batch, level, logger and message (docs/metrics.md, "Logs"). Lines print
oldest first, as
  TIME  worker ID (pid PID)  UDFS  batch N  LEVEL  [LOGGER:] MESSAGE

Levels: a line a UDF logged with Python's logging keeps its level (debug, info,
warning, error, critical); anything else it printed or wrote (print, stderr,
os.write, native code) is "output".

Examples:
  # everything the workers wrote
  quiver logs logs/
  # the errors of UDF 'loud' (and critical ones)
  quiver logs logs/ --udf loud --level error
  # what worker 2 wrote that mentions a row id
  quiver logs logs/ --worker 2 --grep 'id=1234'
  # the raw JSON lines, for jq
  quiver logs logs/ --level warning --json | jq .message

Exit status: 0 when lines matched, 1 when none did, 2 when DIR holds no logs.)";

// Severity of a level for --level; -1 for "output", which ranks with nothing.
int Severity(const std::string& level) {
  static const std::map<std::string, int> kSeverity = {
      {"debug", 10}, {"info", 20}, {"warning", 30}, {"error", 40}, {"critical", 50}};
  const auto found = kSeverity.find(level);
  return found == kSeverity.end() ? -1 : found->second;
}

// Appends code point `code` to `out` as UTF-8.
void AppendUtf8(unsigned code, std::string* out) {
  if (code < 0x80) {
    *out += static_cast<char>(code);
  } else if (code < 0x800) {
    *out += static_cast<char>(0xC0 | (code >> 6));
    *out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    *out += static_cast<char>(0xE0 | (code >> 12));
    *out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

// A reader of the flat JSON objects LogSink writes: string, number and null
// values, and lists of strings.
class FlatJson {
 public:
  explicit FlatJson(const std::string& text) : text_(text) {}

  std::optional<std::map<std::string, std::vector<std::string>>> Object() {
    std::map<std::string, std::vector<std::string>> fields;
    if (!Take('{')) return std::nullopt;
    if (Take('}')) return fields;
    do {
      auto key = String();
      if (!key || !Take(':')) return std::nullopt;
      auto value = Value();
      if (!value) return std::nullopt;
      fields[*key] = std::move(*value);
    } while (Take(','));
    if (!Take('}')) return std::nullopt;
    SkipSpace();
    if (at_ != text_.size()) return std::nullopt;
    return fields;
  }

 private:
  void SkipSpace() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t')) ++at_;
  }
  bool Take(char c) {
    SkipSpace();
    if (at_ >= text_.size() || text_[at_] != c) return false;
    ++at_;
    return true;
  }
  std::optional<std::vector<std::string>> Value() {
    SkipSpace();
    if (at_ >= text_.size()) return std::nullopt;
    if (text_[at_] == '"') {
      auto text = String();
      if (!text) return std::nullopt;
      return std::vector<std::string>{*text};
    }
    if (Take('[')) {
      std::vector<std::string> items;
      if (Take(']')) return items;
      do {
        auto item = String();
        if (!item) return std::nullopt;
        items.push_back(*item);
      } while (Take(','));
      if (!Take(']')) return std::nullopt;
      return items;
    }
    const size_t start = at_;
    while (at_ < text_.size() &&
           std::string_view("-+.eE0123456789nul").find(text_[at_]) != std::string_view::npos) {
      ++at_;
    }
    if (at_ == start) return std::nullopt;
    const std::string word = text_.substr(start, at_ - start);
    if (word == "null") return std::vector<std::string>{""};
    return std::vector<std::string>{word};
  }
  std::optional<std::string> String() {
    if (!Take('"')) return std::nullopt;
    std::string out;
    while (at_ < text_.size()) {
      const char c = text_[at_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (at_ >= text_.size()) return std::nullopt;
      const char escaped = text_[at_++];
      switch (escaped) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u': {
          if (at_ + 4 > text_.size()) return std::nullopt;
          unsigned code = 0;
          for (int i = 0; i < 4; ++i) {
            const char digit = text_[at_++];
            code <<= 4;
            if (digit >= '0' && digit <= '9') {
              code |= static_cast<unsigned>(digit - '0');
            } else if (digit >= 'a' && digit <= 'f') {
              code |= static_cast<unsigned>(digit - 'a' + 10);
            } else if (digit >= 'A' && digit <= 'F') {
              code |= static_cast<unsigned>(digit - 'A' + 10);
            } else {
              return std::nullopt;
            }
          }
          AppendUtf8(code, &out);
          break;
        }
        default:
          out += escaped;  // \" \\ \/
      }
    }
    return std::nullopt;
  }

  const std::string& text_;
  size_t at_ = 0;
};

std::string Field(const std::map<std::string, std::vector<std::string>>& fields,
                  const std::string& name) {
  const auto found = fields.find(name);
  return found == fields.end() || found->second.empty() ? "" : found->second.front();
}

// Returns the log files in `directory`, by name.
std::vector<std::filesystem::path> LogFiles(const std::string& directory) {
  std::vector<std::filesystem::path> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
    if (entry.path().extension() == ".jsonl") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

std::optional<KeptLine> ParseKeptLine(const std::string& line) {
  auto fields = FlatJson(line).Object();
  if (!fields || fields->count("message") == 0 || fields->count("level") == 0) return std::nullopt;
  KeptLine kept;
  kept.time = Field(*fields, "time");
  kept.udfs = (*fields)["udfs"];
  kept.worker = Field(*fields, "worker");
  kept.pid = Field(*fields, "pid");
  kept.batch = Field(*fields, "batch");
  kept.level = Field(*fields, "level");
  kept.logger = Field(*fields, "logger");
  kept.message = Field(*fields, "message");
  kept.raw = line;
  return kept;
}

bool Matches(const KeptLine& line, const LogsArguments& arguments) {
  if (!arguments.udf.empty() &&
      std::find(line.udfs.begin(), line.udfs.end(), arguments.udf) == line.udfs.end()) {
    return false;
  }
  if (!arguments.level.empty()) {
    const int wanted = Severity(arguments.level);
    if (wanted < 0 ? line.level != arguments.level : Severity(line.level) < wanted) return false;
  }
  if (!arguments.worker.empty() && line.worker != arguments.worker &&
      line.pid != arguments.worker) {
    return false;
  }
  return arguments.grep.empty() || line.message.find(arguments.grep) != std::string::npos;
}

std::string FormatKeptLine(const KeptLine& line) {
  std::string udfs;
  for (const auto& udf : line.udfs) udfs += (udfs.empty() ? "" : ",") + udf;
  std::string level = line.level;
  std::transform(level.begin(), level.end(), level.begin(), [](char c) {
    return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  });
  std::string text = line.time + "  worker " + line.worker + " (pid " + line.pid + ")  " +
                     (udfs.empty() ? "-" : udfs) + "  " +
                     (line.batch.empty() ? "-" : "batch " + line.batch) + "  " + level + "  ";
  if (!line.logger.empty()) text += line.logger + ": ";
  return text + line.message + "\n";
}

CLI::App* AddLogsCommand(CLI::App& app, LogsArguments& arguments) {
  CLI::App* logs = app.add_subcommand(
      "logs", "Search the worker logs a run kept with --log-dir and print the matching lines");
  logs->footer(kLogsFooter);
  logs->add_option("DIR", arguments.directory, "Directory given to 'quiver run --log-dir'")
      ->required();
  logs->add_option("--udf", arguments.udf, "Only lines written while UDF NAME ran");
  logs->add_option("--level", arguments.level,
                   "Only lines logged at LEVEL or more severe (debug, info, warning, error, "
                   "critical); 'output' for the plain lines")
      ->check(CLI::IsMember({"debug", "info", "warning", "error", "critical", "output"}));
  logs->add_option("--worker", arguments.worker, "Only lines of worker N (its id or its pid)");
  logs->add_option("--grep", arguments.grep, "Only lines whose message contains TEXT");
  logs->add_flag("--json", arguments.json, "Print the matching JSON lines as they are kept");
  return logs;
}

int RunLogsCommand(const LogsArguments& arguments) {
  const auto files = LogFiles(arguments.directory);
  if (files.empty()) {
    std::fprintf(stderr,
                 "quiver: error: %s holds no worker logs (*.jsonl); give the directory a run "
                 "wrote with 'quiver run ... --log-dir DIR'\n",
                 arguments.directory.c_str());
    return 2;
  }
  std::vector<KeptLine> matched;
  int64_t unreadable = 0;
  for (const auto& file : files) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      auto kept = ParseKeptLine(line);
      if (!kept) {
        ++unreadable;
        continue;
      }
      if (Matches(*kept, arguments)) matched.push_back(std::move(*kept));
    }
  }
  // Each file is in time order already; the stable sort interleaves the workers.
  std::stable_sort(matched.begin(), matched.end(),
                   [](const KeptLine& a, const KeptLine& b) { return a.time < b.time; });
  for (const auto& line : matched) {
    const std::string text = arguments.json ? line.raw + "\n" : FormatKeptLine(line);
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
  if (unreadable > 0) {
    std::fprintf(stderr, "quiver: %lld lines in %s are not log lines and were skipped\n",
                 static_cast<long long>(unreadable), arguments.directory.c_str());
  }
  return matched.empty() ? 1 : 0;
}

}  // namespace quiver::cli
