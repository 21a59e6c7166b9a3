#include "quiver/cli/top_command.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>
#include <thread>

#include "quiver/cli/interrupt.h"
#include "quiver/cli/run_status.h"

namespace quiver::cli {
namespace {

// A status larger than this is not one a run wrote.
constexpr std::uintmax_t kMaxStatusBytes = 1 << 20;

constexpr char kTopFooter[] =
    R"(A run publishes its status while it runs (rewritten twice a second in its
private directory, $TMPDIR/quiver-PID-XXXXXX, readable by you only); `quiver top`
shows every run of yours going on, or only RUN (its pid), and redraws until
they end. The view, per run:
  run 4242  in.parquet  udfs y
  quiver: 120,000 / 1,000,000 rows (12%)  85.3k rows/s  20.1 MB/s  ETA 0:10
    slowest: y (worker 2 (pid 4250), batch 7 for 2.10 s)
    worker 1 (pid 4248)  y  idle  rss 80.2 MiB
    worker 2 (pid 4250)  y  computing batch 7 for 2.10 s  rss 81.0 MiB

Examples:
  quiver top                  # watch every run of yours
  quiver top 4242 --once      # one look at run 4242
  quiver top --once --json | jq '.[0].workers'

--json prints a JSON list per refresh, one run each: pid, input, udfs, slowest,
and the fields of `quiver run --progress json` (rows, total_rows, bytes,
rows_per_second, final, workers with state, batch, seconds, in_flight, rss_bytes).
Exit status: 0 when the runs ended (or after --once), 1 when none is going on.)";

// The directory's run pid: "quiver-PID-XXXXXX" -> PID; 0 when not such a name.
pid_t RunPid(const std::string& name) {
  const std::string prefix = "quiver-";
  if (name.rfind(prefix, 0) != 0) return 0;
  const size_t dash = name.find('-', prefix.size());
  if (dash == std::string::npos || name.size() != dash + 7) return 0;
  const std::string digits = name.substr(prefix.size(), dash - prefix.size());
  if (digits.empty() || digits.size() > 9 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return 0;
  }
  return static_cast<pid_t>(std::stol(digits));
}

// Reads a status file of ours: a regular file of this user, not too large.
std::optional<std::string> ReadStatus(const std::filesystem::path& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode) || info.st_uid != ::getuid() ||
      static_cast<std::uintmax_t>(info.st_size) > kMaxStatusBytes) {
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) return std::nullopt;
  return text.str();
}

std::string Base() {
  const char* base = std::getenv("TMPDIR");
  return base != nullptr && *base != '\0' ? base : "/tmp";
}

void Draw(const std::vector<PublishedRun>& runs, const TopArguments& arguments, bool terminal) {
  std::string out;
  if (arguments.json) {
    for (const auto& run : runs) out += (out.empty() ? "[" : ", ") + run.json;
    out += "]\n";
  } else {
    // On a terminal the view replaces the last one; elsewhere views follow each other.
    if (terminal && !arguments.once) out += "\033[H\033[J";
    for (const auto& run : runs) out += run.view + "\n";
  }
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace

std::vector<PublishedRun> FindPublishedRuns(const std::string& base, const std::string& run) {
  namespace fs = std::filesystem;
  std::vector<PublishedRun> runs;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(base, error)) {
    const pid_t pid = RunPid(entry.path().filename().string());
    if (pid <= 0) continue;
    if (!run.empty() && run != std::to_string(pid) && run != entry.path().string()) continue;
    struct stat info {};
    if (::lstat(entry.path().c_str(), &info) != 0 || !S_ISDIR(info.st_mode) ||
        info.st_uid != ::getuid() || (info.st_mode & 077) != 0) {
      continue;
    }
    if (::kill(pid, 0) != 0 && errno == ESRCH) continue;  // a run that was killed
    auto json = ReadStatus(entry.path() / kRunStatusJson);
    auto view = ReadStatus(entry.path() / kRunStatusView);
    if (!json || !view || json->empty() || json->front() != '{' || json->back() != '}') continue;
    PublishedRun published;
    published.directory = entry.path().string();
    published.pid = pid;
    published.final = json->find("\"final\": true") != std::string::npos;
    published.json = std::move(*json);
    published.view = std::move(*view);
    runs.push_back(std::move(published));
  }
  std::sort(runs.begin(), runs.end(),
            [](const PublishedRun& a, const PublishedRun& b) { return a.pid < b.pid; });
  return runs;
}

CLI::App* AddTopCommand(CLI::App& app, TopArguments& arguments) {
  CLI::App* top = app.add_subcommand(
      "top",
      "Watch the runs of yours going on: each worker's state and memory, rows/s, the "
      "slowest UDF");
  top->footer(kTopFooter);
  top->add_option("RUN", arguments.run, "The run to watch: its pid (default: every run)");
  top->add_flag("--once", arguments.once, "Draw the view once and exit");
  top->add_flag("--json", arguments.json,
                "Print the runs' status as a JSON list (one line per refresh) instead of the view");
  top->add_option("--interval", arguments.interval, "Seconds between refreshes")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  return top;
}

int RunTopCommand(const TopArguments& arguments) {
  const std::string base = Base();
  const bool terminal = ::isatty(STDOUT_FILENO) != 0;
  bool shown = false;
  while (InterruptSignal() == 0) {
    const auto runs = FindPublishedRuns(base, arguments.run);
    if (runs.empty()) {
      if (shown) return 0;  // the runs it showed ended
      std::fprintf(stderr,
                   "quiver top: no run of yours is going on%s (looked for the status a "
                   "`quiver run` publishes in %s/quiver-PID-*); start one in another "
                   "terminal, or check TMPDIR is the run's\n",
                   arguments.run.empty() ? "" : (" as " + arguments.run).c_str(), base.c_str());
      return 1;
    }
    Draw(runs, arguments, terminal);
    shown = true;
    if (arguments.once) return 0;
    if (std::all_of(runs.begin(), runs.end(), [](const auto& run) { return run.final; })) return 0;
    std::this_thread::sleep_for(
        std::chrono::milliseconds(static_cast<int64_t>(arguments.interval * 1000)));
  }
  return 130;
}

}  // namespace quiver::cli
