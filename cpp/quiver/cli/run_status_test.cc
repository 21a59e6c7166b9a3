#include "quiver/cli/run_status.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace quiver::cli {
namespace {

using std::chrono::milliseconds;

worker::WorkerState Worker(const std::string& name, int64_t in_flight, uint64_t batch,
                           milliseconds computing_for) {
  worker::WorkerState state;
  state.worker = name;
  state.pid = 42;
  state.udfs = {"y"};
  state.in_flight = in_flight;
  state.batch = batch;
  state.computing_for = computing_for;
  state.rss_bytes = 1 << 20;
  return state;
}

ProgressFigures TwoWorkers() {
  ProgressFigures figures;
  figures.rows = 1000;
  figures.total_rows = 4000;
  figures.bytes = 8000;
  figures.elapsed = std::chrono::seconds(1);
  figures.workers = {Worker("worker 1 (pid 41)", 1, 3, milliseconds(120)),
                     Worker("worker 2 (pid 42)", 2, 4, milliseconds(900))};
  return figures;
}

TEST(RunStatus, TheSlowestIsTheWorkerOnItsBatchTheLongest) {
  auto slowest = SlowestWorker(TwoWorkers().workers);
  ASSERT_TRUE(slowest.has_value());
  EXPECT_EQ(slowest->worker, "worker 2 (pid 42)");
  EXPECT_FALSE(SlowestWorker({Worker("worker 1 (pid 41)", 0, 0, milliseconds(0))}).has_value());
}

TEST(RunStatus, TheJsonNamesTheRunBeforeTheProgressFields) {
  const RunIdentity run{77, "in \"x\".parquet", {"y"}};
  const std::string json = FormatRunStatusJson(run, TwoWorkers(), false);
  EXPECT_EQ(json.rfind("{\"pid\": 77, \"input\": \"in \\\"x\\\".parquet\", \"udfs\": [\"y\"], "
                       "\"slowest\": {\"udfs\": [\"y\"], \"worker\": \"worker 2 (pid 42)\", "
                       "\"batch\": 4, \"seconds\": 0.900}, \"rows\": 1000, ",
                       0),
            0u)
      << json;
  EXPECT_NE(json.find("\"final\": false"), std::string::npos);
  EXPECT_EQ(json.back(), '}');
  ProgressFigures idle;
  EXPECT_NE(FormatRunStatusJson(run, idle, true).find("\"slowest\": null"), std::string::npos);
}

TEST(RunStatus, TheViewHasTheRunTheLineTheSlowestAndAWorkerPerLine) {
  const std::string view = FormatRunStatusView({77, "in.parquet", {"y"}}, TwoWorkers());
  std::istringstream lines(view);
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line, "run 77  in.parquet  udfs y");
  std::getline(lines, line);
  EXPECT_EQ(line.rfind("quiver: 1,000 / 4,000 rows (25%)", 0), 0u) << line;
  std::getline(lines, line);
  EXPECT_EQ(line, "  slowest: y (worker 2 (pid 42), batch 4 for 900 ms)");
  std::getline(lines, line);
  EXPECT_EQ(line.rfind("  worker 1 (pid 41)  y  computing batch 3", 0), 0u) << line;
}

TEST(RunStatus, FilesAreReplacedWholeAndReadableByTheUserOnly) {
  std::string pattern = ::testing::TempDir() + "/run-status-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  ASSERT_TRUE(WriteFileAtomically(pattern, kRunStatusJson, "{\"a\": 1}"));
  ASSERT_TRUE(WriteFileAtomically(pattern, kRunStatusJson, "{}"));
  const std::string path = pattern + "/" + kRunStatusJson;
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "{}");
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_FALSE(WriteFileAtomically(pattern + "/missing", kRunStatusJson, "{}"));
  std::filesystem::remove_all(pattern);
}

}  // namespace
}  // namespace quiver::cli
