// The grouped and table kinds run end to end in real Python workers: what a
// user of exec/grouped checks is the rows that come out, their order, and
// that bad options and failing UDFs are refused with errors that say where.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <arrow/array.h>
#include <arrow/builder.h>
#include <arrow/compute/expression.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>

#include "quiver/exec/grouped/grouped_agg.h"
#include "quiver/exec/grouped/grouped_map.h"
#include "quiver/exec/grouped/table_function.h"
#include "quiver/exec/run_metrics.h"
#include "quiver/testing/python.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/worker/worker_dispatcher.h"

namespace quiver::exec::grouped {
namespace {

namespace cp = arrow::compute;
using std::chrono::milliseconds;

const std::string kUdfs = std::string(QUIVER_GROUPED_TESTDATA) + "/kind_udfs.py";

std::unique_ptr<worker::WorkerDispatcher> MakeDispatcher() {
  worker::WorkerSpec spec;
  spec.command = worker::PythonWorkerCommand(quiver::testing::PythonForWorkers());
  spec.batch_timeout = milliseconds(30000);
  spec.stop_grace = milliseconds(500);
  return worker::WorkerDispatcher::Make(spec).ValueOrDie();
}

UdfCall Call(std::string name, const std::string& function, std::vector<std::string> columns) {
  UdfCall call;
  call.name = std::move(name);
  call.payload = kUdfs + ":" + function;
  for (auto& column : columns) call.arguments.push_back(cp::field_ref(std::move(column)));
  return call;
}

// `batches` batches of `rows` rows (k int64, v int64): row i has k = i % 5, v = i.
std::shared_ptr<arrow::RecordBatchReader> Input(int batches, int rows) {
  auto schema =
      arrow::schema({arrow::field("k", arrow::int64()), arrow::field("v", arrow::int64())});
  std::vector<std::shared_ptr<arrow::RecordBatch>> out;
  int64_t i = 0;
  for (int b = 0; b < batches; ++b) {
    arrow::Int64Builder keys, values;
    for (int r = 0; r < rows; ++r, ++i) {
      EXPECT_OK(keys.Append(i % 5));
      EXPECT_OK(values.Append(i));
    }
    out.push_back(arrow::RecordBatch::Make(schema, rows, {*keys.Finish(), *values.Finish()}));
  }
  return arrow::RecordBatchReader::Make(out, schema).ValueOrDie();
}

// Every output row as (column name -> value), in output order.
struct Collected {
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  BatchSink Sink() {
    return [this](std::shared_ptr<arrow::RecordBatch> batch) {
      batches.push_back(std::move(batch));
      return arrow::Status::OK();
    };
  }
  std::vector<int64_t> Column(const std::string& name) const {
    std::vector<int64_t> values;
    for (const auto& batch : batches) {
      const auto& column = static_cast<const arrow::Int64Array&>(*batch->GetColumnByName(name));
      for (int64_t r = 0; r < column.length(); ++r) values.push_back(column.Value(r));
    }
    return values;
  }
};

KindOptions Options(std::vector<std::string> group_by, int workers) {
  KindOptions options;
  options.group_by = std::move(group_by);
  options.workers = workers;
  options.batch_rows = 7;  // several batches of whole groups per run
  return options;
}

TEST(GroupedRuns, AGroupedMapSeesEachGroupWholeOnAnyWorker) {
  auto dispatcher = MakeDispatcher();
  ASSERT_OK_AND_ASSIGN(auto run, GroupedMapRun::Start(dispatcher.get(), Call("t", "totals", {}),
                                                      Options({"k"}, 2), Input(4, 10)));
  Collected out;
  ASSERT_OK(run->Run(out.Sink()));
  // 40 rows, k = i % 5: 8 rows a group; totals of i over each residue class.
  std::map<int64_t, int64_t> totals;
  const auto keys = out.Column("k"), counts = out.Column("n"), sums = out.Column("total");
  ASSERT_EQ(keys.size(), 5u);
  for (size_t g = 0; g < keys.size(); ++g) {
    EXPECT_EQ(counts[g], 8) << "group " << keys[g];
    totals[keys[g]] = sums[g];
  }
  for (int64_t k = 0; k < 5; ++k) EXPECT_EQ(totals[k], 8 * k + 5 * (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7));
  EXPECT_EQ(run->metrics().rows_in, 40);
  EXPECT_EQ(run->metrics().batches_in, 4);
  // The workers' figures, as the scalar kinds report them.
  ASSERT_EQ(run->metrics().groups.size(), 1u);
  const UdfGroupMetrics& group = run->metrics().groups.front();
  EXPECT_EQ(group.udfs, std::vector<std::string>{"t"});
  ASSERT_EQ(group.workers.size(), 2u);
  EXPECT_EQ(group.Total().rows_in, 40);
  EXPECT_EQ(group.Total().rows_out, 5);
  EXPECT_GT(group.Total().bytes_out, 0);
  EXPECT_EQ(dispatcher->workers_started(), 2);
}

TEST(GroupedRuns, SimpleAndPartialAggregatesGiveOneRowPerGroupInFirstRowOrder) {
  for (const char* function : {"count", "Sum"}) {
    auto dispatcher = MakeDispatcher();
    ASSERT_OK_AND_ASSIGN(auto run,
                         GroupedAggRun::Start(dispatcher.get(), {Call("a", function, {"v"})},
                                              Options({"k"}, 2), Input(3, 10)));
    Collected out;
    ASSERT_OK(run->Run(out.Sink()));
    EXPECT_EQ(out.Column("k"), (std::vector<int64_t>{0, 1, 2, 3, 4})) << function;
    const auto values = out.Column("a");
    ASSERT_EQ(values.size(), 5u) << function;
    for (int64_t k = 0; k < 5; ++k) {
      // 30 rows: 6 a group; their v sum is 6k + 5 * (0 + ... + 5).
      EXPECT_EQ(values[k], std::string(function) == "count" ? 6 : 6 * k + 75) << function;
    }
  }
}

TEST(GroupedRuns, ATableFunctionKeepsInputOrderAndRepeatsPassThroughRows) {
  auto dispatcher = MakeDispatcher();
  ASSERT_OK_AND_ASSIGN(auto run,
                       TableFunctionRun::Start(dispatcher.get(), Call("r", "repeat", {"k"}),
                                               std::vector<std::string>{"v"}, "pass_through",
                                               Options({}, 2), Input(6, 5)));
  Collected out;
  ASSERT_OK(run->Run(out.Sink()));
  // Row i (k = i % 5) comes out k times, with copies 0..k-1, in input order.
  std::vector<int64_t> want_v, want_copy;
  for (int64_t i = 0; i < 30; ++i) {
    for (int64_t c = 0; c < i % 5; ++c) {
      want_v.push_back(i);
      want_copy.push_back(c);
    }
  }
  EXPECT_EQ(out.Column("v"), want_v);
  EXPECT_EQ(out.Column("copy"), want_copy);
}

TEST(GroupedRuns, NumbersBelowOneAreRefusedBeforeAnyWorkerStarts) {
  auto dispatcher = MakeDispatcher();
  for (int field = 0; field < 4; ++field) {
    KindOptions options = Options({"k"}, 1);
    const char* name[] = {"workers", "max_batches_in_flight_per_worker", "batch_rows",
                          "max_group_bytes"};
    if (field == 0) options.workers = 0;
    if (field == 1) options.max_batches_in_flight_per_worker = 0;
    if (field == 2) options.batch_rows = 0;
    if (field == 3) options.max_group_bytes = 0;
    auto run =
        GroupedAggRun::Start(dispatcher.get(), {Call("a", "count", {"v"})}, options, Input(1, 5));
    ASSERT_FALSE(run.ok()) << name[field];
    EXPECT_NE(run.status().message().find(std::string(name[field]) + " must be at least 1, not 0"),
              std::string::npos)
        << run.status().message();
  }
  EXPECT_EQ(dispatcher->workers_started(), 0);
}

TEST(GroupedRuns, AFailingUdafNamesTheRunTheGroupsAndTheWorker) {
  auto dispatcher = MakeDispatcher();
  ASSERT_OK_AND_ASSIGN(
      auto run, GroupedAggRun::Start(dispatcher.get(), {Call("bad", "fails_on_seven", {"v"})},
                                     Options({"k"}, 2), Input(2, 10)));
  Collected out;
  const arrow::Status status = run->Run(out.Sink());
  ASSERT_FALSE(status.ok());
  const std::string message = status.message();
  EXPECT_NE(message.find("running aggregates 'bad' on groups "), std::string::npos) << message;
  EXPECT_NE(message.find(" in worker "), std::string::npos) << message;
  EXPECT_NE(message.find("seven"), std::string::npos) << message;
}

}  // namespace
}  // namespace quiver::exec::grouped
