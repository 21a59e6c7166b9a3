#include "quiver/cli/metrics_report.h"

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace quiver::cli {
namespace {

exec::UdfRunMetrics TwoWorkers() {
  exec::WorkerMetrics a;
  a.worker = "worker 1";
  a.batches = 2;
  a.rows_in = 1000;
  a.rows_out = 1000;
  a.udf_nanos = 5'000'000;
  a.counters["rows_skipped"] = 3;
  exec::WorkerMetrics b = a;
  b.worker = "worker 2";
  b.counters["rows_skipped"] = 4;
  exec::UdfRunMetrics metrics;
  exec::UdfGroupMetrics group;
  group.udfs = {"f", "g"};
  group.workers = {a, b};
  metrics.groups.push_back(group);
  return metrics;
}

TEST(MetricsReportTest, TableHasARowPerUdfGroupAndPerWorkerOnRequest) {
  const std::string table = FormatMetricsTable(TwoWorkers(), false);
  EXPECT_NE(table.find("f,g"), std::string::npos) << table;
  EXPECT_NE(table.find("2,000"), std::string::npos) << table;
  EXPECT_EQ(table.find("worker 1"), std::string::npos) << table;
  EXPECT_NE(table.find("counter  rows_skipped = 7 (f,g)"), std::string::npos) << table;
  const std::string verbose = FormatMetricsTable(TwoWorkers(), true);
  EXPECT_NE(verbose.find("worker 1"), std::string::npos) << verbose;
  EXPECT_NE(verbose.find("worker 2"), std::string::npos) << verbose;
}

TEST(MetricsReportTest, JsonHoldsTotalsAndWorkers) {
  const std::string json = MetricsJson(TwoWorkers(), {std::chrono::seconds(1), {}, {}});
  EXPECT_NE(json.find("\"elapsed_nanos\": 1000000000"), std::string::npos) << json;
  EXPECT_NE(json.find("\"udfs\": [\"f\", \"g\"], \"batches\": 4, \"rows_in\": 2000"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"counters\": {\"rows_skipped\": 7}"), std::string::npos) << json;
  EXPECT_NE(json.find("{\"worker\": \"worker 2\""), std::string::npos) << json;
}

TEST(MetricsReportTest, APathThatCannotBeWrittenIsRefused) {
  EXPECT_TRUE(CheckMetricsPath("metrics.json").ok());
  auto missing = CheckMetricsPath("/no/such/directory/metrics.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("does not exist"), std::string::npos) << missing.message();
  auto directory = CheckMetricsPath(std::filesystem::temp_directory_path().string());
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.message().find("is a directory"), std::string::npos) << directory.message();
}

}  // namespace
}  // namespace quiver::cli
