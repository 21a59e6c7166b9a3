#include "quiver/exec/run_metrics.h"

#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace quiver::exec {
namespace {

TEST(RunMetricsTest, MetricNamesAreIdentifiers) {
  EXPECT_TRUE(IsMetricName("rows_skipped"));
  EXPECT_TRUE(IsMetricName("_x9"));
  EXPECT_FALSE(IsMetricName(""));
  EXPECT_FALSE(IsMetricName("9lives"));
  EXPECT_FALSE(IsMetricName("rows skipped"));
  EXPECT_FALSE(IsMetricName("rows-skipped"));
  EXPECT_FALSE(IsMetricName("r\xc3\xa9sum\xc3\xa9"));
}

TEST(RunMetricsTest, TakesWhatAWorkerReports) {
  v1::Metrics reported;
  reported.set_udf_nanos(5);
  reported.set_codec_nanos(7);
  reported.set_peak_rss_bytes(1 << 20);
  (*reported.mutable_counters())["rows_skipped"] = 3;
  WorkerMetrics metrics;
  ASSERT_TRUE(TakeReportedMetrics(reported, &metrics).ok());
  EXPECT_EQ(metrics.udf_nanos, 5);
  EXPECT_EQ(metrics.codec_nanos, 7);
  EXPECT_EQ(metrics.peak_rss_bytes, 1 << 20);
  EXPECT_EQ(metrics.counters.at("rows_skipped"), 3);
}

TEST(RunMetricsTest, RefusesACounterNameThatIsNoMetricName) {
  v1::Metrics reported;
  (*reported.mutable_counters())["rows skipped"] = 1;
  WorkerMetrics metrics;
  auto status = TakeReportedMetrics(reported, &metrics);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("'rows skipped', which is not a metric name"), std::string::npos)
      << status.message();
}

TEST(RunMetricsTest, RefusesTooManyCountersAndFiguresBeyondInt64) {
  v1::Metrics many;
  for (size_t i = 0; i <= kMaxCounters; ++i)
    (*many.mutable_counters())["c" + std::to_string(i)] = 1;
  WorkerMetrics metrics;
  EXPECT_FALSE(TakeReportedMetrics(many, &metrics).ok());
  v1::Metrics huge;
  huge.set_udf_nanos(std::numeric_limits<uint64_t>::max());
  EXPECT_FALSE(TakeReportedMetrics(huge, &metrics).ok());
}

TEST(RunMetricsTest, AddingSumsFiguresAndCountersAndKeepsThePeak) {
  WorkerMetrics a;
  a.rows_in = 2;
  a.peak_rss_bytes = 10;
  a.counters["n"] = 1;
  WorkerMetrics b;
  b.rows_in = 3;
  b.peak_rss_bytes = 4;
  b.counters["n"] = std::numeric_limits<int64_t>::max();
  UdfGroupMetrics group;
  group.udfs = {"f"};
  group.workers = {a, b};
  WorkerMetrics total = group.Total();
  EXPECT_EQ(total.rows_in, 5);
  EXPECT_EQ(total.peak_rss_bytes, 10);
  EXPECT_EQ(total.counters.at("n"), std::numeric_limits<int64_t>::max());
}

TEST(RunMetricsTest, BatchesAreSampledEvenlyAtTheRate) {
  auto sampled = [](double rate, uint64_t batches) {
    std::vector<uint64_t> out;
    for (uint64_t n = 0; n < batches; ++n) {
      if (BatchSampled(n, rate)) out.push_back(n);
    }
    return out;
  };
  EXPECT_EQ(sampled(0, 10), std::vector<uint64_t>{});
  EXPECT_EQ(sampled(1, 4), (std::vector<uint64_t>{0, 1, 2, 3}));
  EXPECT_EQ(sampled(0.25, 10), (std::vector<uint64_t>{3, 7}));
  EXPECT_EQ(sampled(0.5, 10).size(), 5u);
  EXPECT_EQ(sampled(0.01, 1000).size(), 10u);
  EXPECT_EQ(sampled(-1, 10), std::vector<uint64_t>{});
}

}  // namespace
}  // namespace quiver::exec
