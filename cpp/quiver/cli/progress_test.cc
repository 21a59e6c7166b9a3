#include "quiver/cli/progress.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace quiver::cli {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(Progress, FormatsCounts) {
  EXPECT_EQ(FormatCount(0), "0");
  EXPECT_EQ(FormatCount(999), "999");
  EXPECT_EQ(FormatCount(1000), "1,000");
  EXPECT_EQ(FormatCount(1234567), "1,234,567");
  EXPECT_EQ(FormatCount(-1234), "-1,234");
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(FormatDuration(std::chrono::microseconds(4200)), "4.2 ms");
  EXPECT_EQ(FormatDuration(milliseconds(840)), "840 ms");
  EXPECT_EQ(FormatDuration(milliseconds(1250)), "1.25 s");
  EXPECT_EQ(FormatDuration(milliseconds(12345)), "12.3 s");
  EXPECT_EQ(FormatDuration(seconds(125)), "2 min 05 s");
  EXPECT_EQ(FormatDuration(seconds(3720)), "1 h 02 min");
}

TEST(Progress, FormatsALineWithTotalAndEta) {
  ProgressFigures figures;
  figures.rows = 250000;
  figures.total_rows = 1000000;
  figures.bytes = 50'000'000;
  figures.elapsed = seconds(10);
  EXPECT_EQ(FormatProgressLine(figures),
            "quiver: 250,000 / 1,000,000 rows (25%)  25.0k rows/s  5.0 MB/s  ETA 0:30");
}

TEST(Progress, FormatsALineWithoutTotal) {
  ProgressFigures figures;
  figures.rows = 1500;
  figures.bytes = 2'000'000;
  figures.elapsed = seconds(1);
  EXPECT_EQ(FormatProgressLine(figures), "quiver: 1,500 rows  1.5k rows/s  2.0 MB/s");
}

worker::WorkerState Busy(std::string udf, int64_t in_flight) {
  worker::WorkerState state;
  state.worker = "worker 1 (pid 42)";
  state.pid = 42;
  state.udfs = {std::move(udf)};
  state.in_flight = in_flight;
  state.batch = 7;
  state.computing_for = milliseconds(1500);
  state.rss_bytes = 1 << 20;
  return state;
}

TEST(Progress, NamesTheBusiestGroupOnlyWhenThereAreSeveral) {
  ProgressFigures figures;
  figures.rows = 1500;
  figures.elapsed = seconds(1);
  figures.workers = {Busy("a", 1), Busy("a", 1)};
  EXPECT_EQ(BusiestGroup(figures.workers), "");
  figures.workers.push_back(Busy("b", 3));
  EXPECT_EQ(BusiestGroup(figures.workers), "b");
  EXPECT_EQ(FormatProgressLine(figures), "quiver: 1,500 rows  1.5k rows/s  0.0 MB/s  busiest: b");
}

TEST(Progress, FormatsAJsonLine) {
  ProgressFigures figures;
  figures.rows = 10;
  figures.total_rows = 20;
  figures.bytes = 80;
  figures.elapsed = seconds(2);
  figures.workers = {Busy("a", 2), Busy("a", 0)};
  EXPECT_EQ(FormatProgressJson(figures, /*final=*/true),
            "{\"rows\": 10, \"total_rows\": 20, \"bytes\": 80, \"elapsed_seconds\": 2.000, "
            "\"rows_per_second\": 5.0, \"final\": true, \"workers\": ["
            "{\"worker\": \"worker 1 (pid 42)\", \"pid\": 42, \"udfs\": [\"a\"], \"state\": "
            "\"computing\", \"batch\": 7, \"seconds\": 1.500, \"in_flight\": 2, \"rss_bytes\": "
            "1048576}, "
            "{\"worker\": \"worker 1 (pid 42)\", \"pid\": 42, \"udfs\": [\"a\"], \"state\": "
            "\"idle\", \"batch\": null, \"seconds\": 0.000, \"in_flight\": 0, \"rss_bytes\": "
            "1048576}]}");
}

TEST(Progress, FormatsTheSummary) {
  RunSummary summary;
  summary.rows = 10000;
  summary.batches = 3;
  summary.bytes = 400'000;
  summary.elapsed = milliseconds(500);
  summary.worker_udf_time = milliseconds(310);
  summary.workers = 2;
  summary.output = "out.parquet";
  EXPECT_EQ(FormatSummary(summary),
            "quiver: done in 500 ms\n"
            "  rows     10,000 in 3 batches (20.0k rows/s, 0.8 MB/s)\n"
            "  in UDFs  310 ms over 2 workers\n"
            "  output   out.parquet\n");
  summary.output = "";
  summary.batches = 1;
  summary.workers = 1;
  const std::string text = FormatSummary(summary);
  EXPECT_NE(text.find("in 1 batch ("), std::string::npos) << text;
  EXPECT_NE(text.find("over 1 worker\n"), std::string::npos) << text;
  EXPECT_NE(text.find("discarded (noop)"), std::string::npos) << text;
}

// Returns what `display` wrote to its memory stream so far.
std::string Drawn(std::FILE* stream, char** buffer, size_t* size) {
  std::fflush(stream);
  return std::string(*buffer, *size);
}

TEST(ProgressDisplay, RedrawsAtMostFiveTimesASecond) {
  char* buffer = nullptr;
  size_t size = 0;
  std::FILE* stream = open_memstream(&buffer, &size);
  ASSERT_NE(stream, nullptr);
  ProgressDisplay display(stream, /*enabled=*/true);
  const auto start = std::chrono::steady_clock::now();
  ProgressFigures figures;
  figures.rows = 1;
  display.Update(figures, start);
  figures.rows = 2;
  display.Update(figures, start + milliseconds(100));  // too soon: skipped
  figures.rows = 3;
  display.Update(figures, start + milliseconds(250));
  display.Clear();
  const std::string text = Drawn(stream, &buffer, &size);
  EXPECT_NE(text.find("quiver: 1 rows"), std::string::npos) << text;
  EXPECT_EQ(text.find("quiver: 2 rows"), std::string::npos) << text;
  EXPECT_NE(text.find("\rquiver: 3 rows"), std::string::npos) << text;
  EXPECT_EQ(text.substr(text.size() - 4), "\r\033[K");
  std::fclose(stream);
  std::free(buffer);
}

TEST(Progress, FormatsAWorkerLine) {
  EXPECT_EQ(FormatWorkerLine(Busy("y", 2)),
            "  worker 1 (pid 42)  y  computing batch 7 for 1.50 s  (2 in flight)  rss 1.0 MiB");
  EXPECT_EQ(FormatWorkerLine(Busy("y", 0)), "  worker 1 (pid 42)  y  idle  rss 1.0 MiB");
}

TEST(ProgressDisplay, LiveRedrawsTheLineAndOneLinePerWorkerInPlace) {
  char* buffer = nullptr;
  size_t size = 0;
  std::FILE* stream = open_memstream(&buffer, &size);
  ASSERT_NE(stream, nullptr);
  ProgressDisplay display(stream, /*enabled=*/true, ProgressMode::kLive);
  ProgressFigures figures;
  figures.rows = 1;
  figures.workers = {Busy("y", 1), Busy("y", 0)};
  const auto start = std::chrono::steady_clock::now();
  display.Update(figures, start);
  figures.rows = 2;
  display.Update(figures, start + milliseconds(250));
  display.Clear();
  const std::string text = Drawn(stream, &buffer, &size);
  const std::string first = "\rquiver: 1 rows  - MB/s\033[K\n" + FormatWorkerLine(Busy("y", 1)) +
                            "\033[K\n" + FormatWorkerLine(Busy("y", 0)) + "\033[K\033[J";
  ASSERT_EQ(text.substr(0, first.size()), first) << text;
  // The second draw goes back up over the two worker lines; Clear erases all three.
  EXPECT_EQ(text.substr(first.size(), 24), "\r\033[2Aquiver: 2 rows  - M");
  EXPECT_EQ(text.substr(text.size() - 8), "\r\033[2A\033[J");
  std::fclose(stream);
  std::free(buffer);
}

TEST(ProgressDisplay, DrawsNothingWhenDisabled) {
  char* buffer = nullptr;
  size_t size = 0;
  std::FILE* stream = open_memstream(&buffer, &size);
  ASSERT_NE(stream, nullptr);
  ProgressDisplay display(stream, /*enabled=*/false);
  display.Update(ProgressFigures{}, std::chrono::steady_clock::now());
  display.Clear();
  EXPECT_EQ(Drawn(stream, &buffer, &size), "");
  std::fclose(stream);
  std::free(buffer);
}

}  // namespace
}  // namespace quiver::cli
