#include "quiver/cli/otlp_spans.h"

#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace quiver::cli {
namespace {

std::vector<std::string> All(const std::string& text, const std::string& pattern) {
  std::vector<std::string> found;
  const std::regex regex(pattern);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), regex);
       it != std::sregex_iterator(); ++it) {
    found.push_back((*it)[1].str());
  }
  return found;
}

exec::UdfRunMetrics OneGroup() {
  exec::UdfRunMetrics metrics;
  metrics.rows = 20;
  metrics.batches = 2;
  exec::UdfGroupMetrics group;
  group.udfs = {"y", "z"};
  group.workers.resize(1);
  group.workers[0].rows_out = 20;
  group.worker_starts.push_back({"worker 1 (pid 99)", "", 0, 99, 10, 20});
  exec::BatchSpan batch;
  batch.batch = 1;
  batch.worker = "worker 1 (pid 99)";
  batch.rows_in = batch.rows_out = 10;
  batch.start_unix_nanos = 30;
  batch.end_unix_nanos = 40;
  batch.worker_nanos = 5;
  group.batch_spans.push_back(batch);
  metrics.groups.push_back(group);
  return metrics;
}

TEST(OtlpSpans, ChildrenHangUnderTheRunSpanOfOneTrace) {
  SpanIds ids;
  const std::string json = OtlpTraceJson(OneGroup(), 5, 50, ids);
  const auto traces = All(json, "\"traceId\":\"([0-9a-f]*)\"");
  ASSERT_EQ(traces.size(), 3u);
  EXPECT_EQ(traces[0].size(), 32u);
  EXPECT_EQ(traces[1], traces[0]);
  EXPECT_EQ(traces[2], traces[0]);
  const auto spans = All(json, "\"spanId\":\"([0-9a-f]*)\"");
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans[0].size(), 16u);
  EXPECT_NE(spans[1], spans[2]);
  EXPECT_EQ(All(json, "\"parentSpanId\":\"([0-9a-f]*)\""),
            (std::vector<std::string>{spans[0], spans[0]}));
  EXPECT_EQ(All(json, "\"name\":\"(quiver\\.[a-z.]*)\""),  // not the scope's "quiver"
            (std::vector<std::string>{"quiver.run", "quiver.worker.start", "quiver.batch"}));
}

TEST(OtlpSpans, AttributesNameTheWorkerAsTheMetricsDo) {
  SpanIds ids;
  const std::string json = OtlpTraceJson(OneGroup(), 5, 50, ids);
  for (const char* expected :
       {"{\"key\":\"quiver.udf_group\",\"value\":{\"stringValue\":\"y,z\"}}",
        "{\"key\":\"quiver.worker\",\"value\":{\"stringValue\":\"1\"}}",
        "{\"key\":\"quiver.pid\",\"value\":{\"stringValue\":\"99\"}}",
        "{\"key\":\"quiver.runtime\",\"value\":{\"stringValue\":\"py\"}}",
        "{\"key\":\"quiver.batch.index\",\"value\":{\"intValue\":\"1\"}}",
        "{\"key\":\"quiver.batch.worker_time\",\"value\":{\"doubleValue\":0.000000005}}",
        "{\"key\":\"quiver.rows_out\",\"value\":{\"intValue\":\"20\"}}",
        "\"startTimeUnixNano\":\"30\",\"endTimeUnixNano\":\"40\""}) {
    EXPECT_NE(json.find(expected), std::string::npos) << expected << " in " << json;
  }
}

TEST(OtlpSpans, TracesGoBesideTheMetrics) {
  EXPECT_EQ(OtlpTracesUrl("http://h:4318"), "http://h:4318/v1/traces");
  EXPECT_EQ(OtlpTracesUrl("http://h:4318/"), "http://h:4318/v1/traces");
  EXPECT_EQ(OtlpTracesUrl("http://h:4318/v1/metrics"), "http://h:4318/v1/traces");
  EXPECT_EQ(OtlpTracesUrl("https://h/otel"), "https://h/otel/v1/traces");
}

TEST(OtlpSpans, TwoRunsHaveTwoTraces) {
  SpanIds a;
  SpanIds b;
  EXPECT_NE(a.trace_id(), b.trace_id());
  EXPECT_NE(a.NextSpanId(), a.NextSpanId());
}

}  // namespace
}  // namespace quiver::cli
