#include "quiver/cli/run_status.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

#include "quiver/worker/log_sink.h"

namespace quiver::cli {
namespace {

constexpr auto kPublishInterval = std::chrono::milliseconds(500);

std::string Seconds(std::chrono::nanoseconds duration) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.3f", static_cast<double>(duration.count()) * 1e-9);
  return text;
}

std::string Joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ",") + name;
  return out;
}

std::string JsonList(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names)
    out += (out.empty() ? "" : ", ") + worker::JsonQuotedRepaired(name);
  return "[" + out + "]";
}

}  // namespace

std::optional<worker::WorkerState> SlowestWorker(const std::vector<worker::WorkerState>& workers) {
  std::optional<worker::WorkerState> slowest;
  for (const auto& state : workers) {
    if (state.in_flight == 0) continue;
    if (!slowest || state.computing_for > slowest->computing_for) slowest = state;
  }
  return slowest;
}

std::string FormatRunStatusJson(const RunIdentity& run, const ProgressFigures& figures,
                                bool final) {
  std::string slowest = "null";
  if (auto worker = SlowestWorker(figures.workers)) {
    slowest = "{\"udfs\": " + JsonList(worker->udfs) +
              ", \"worker\": " + worker::JsonQuotedRepaired(worker->worker) +
              ", \"batch\": " + std::to_string(worker->batch) +
              ", \"seconds\": " + Seconds(worker->computing_for) + "}";
  }
  // The --progress json object, with the run's identity before its fields.
  const std::string progress = FormatProgressJson(figures, final);
  return "{\"pid\": " + std::to_string(run.pid) +
         ", \"input\": " + worker::JsonQuotedRepaired(run.input) +
         ", \"udfs\": " + JsonList(run.udfs) + ", \"slowest\": " + slowest + ", " +
         progress.substr(1);
}

std::string FormatRunStatusView(const RunIdentity& run, const ProgressFigures& figures) {
  std::string view = "run " + std::to_string(run.pid) + "  " + run.input + "  udfs " +
                     Joined(run.udfs) + "\n" + FormatProgressLine(figures) + "\n";
  if (auto worker = SlowestWorker(figures.workers)) {
    view += "  slowest: " + Joined(worker->udfs) + " (" + worker->worker + ", batch " +
            std::to_string(worker->batch) + " for " + FormatDuration(worker->computing_for) + ")\n";
  }
  for (const auto& state : figures.workers) view += FormatWorkerLine(state) + "\n";
  return view;
}

bool WriteFileAtomically(const std::string& directory, const char* name, const std::string& text) {
  const std::string path = directory + "/" + name;
  const std::string temporary = path + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  ::close(fd);
  // A reader sees the old file or the new one, never a part of one.
  return written == text.size() && ::rename(temporary.c_str(), path.c_str()) == 0;
}

RunStatusPublisher::RunStatusPublisher(std::string directory, RunIdentity run,
                                       std::function<ProgressFigures()> figures)
    : directory_(std::move(directory)), run_(std::move(run)), figures_(std::move(figures)) {
  Publish(false);
  thread_ = std::thread([this] { Loop(); });
}

RunStatusPublisher::~RunStatusPublisher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stop_.notify_all();
  thread_.join();
  Publish(true);
}

void RunStatusPublisher::Publish(bool final) {
  const ProgressFigures figures = figures_();
  // Best effort: a run never fails because its status could not be written.
  WriteFileAtomically(directory_, kRunStatusView, FormatRunStatusView(run_, figures));
  WriteFileAtomically(directory_, kRunStatusJson, FormatRunStatusJson(run_, figures, final));
}

void RunStatusPublisher::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_.wait_for(lock, kPublishInterval, [this] { return stopping_; })) {
    lock.unlock();
    Publish(false);
    lock.lock();
  }
}

}  // namespace quiver::cli
