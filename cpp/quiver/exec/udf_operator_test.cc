#include "quiver/exec/udf_operator.h"

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include <arrow/builder.h>
#include <arrow/compute/expression.h>
#include <arrow/json/from_string.h>
#include <arrow/type.h>

#include "quiver/testing/python.h"
#include "quiver/testing/status_matchers.h"
#include "quiver/worker/worker_dispatcher.h"

namespace quiver::exec {
namespace {

namespace cp = arrow::compute;
using std::chrono::milliseconds;

const std::string kUdfs = std::string(QUIVER_EXEC_TESTDATA) + "/operator_udfs.py";

std::unique_ptr<worker::WorkerDispatcher> MakeDispatcher() {
  worker::WorkerSpec spec;
  spec.command = worker::PythonWorkerCommand(quiver::testing::PythonForWorkers());
  spec.batch_timeout = milliseconds(30000);
  spec.stop_grace = milliseconds(500);
  return worker::WorkerDispatcher::Make(spec).ValueOrDie();
}

UdfCall Call(std::string name, const std::string& function, std::vector<cp::Expression> arguments) {
  UdfCall call;
  call.name = std::move(name);
  call.payload = kUdfs + ":" + function;
  call.arguments = std::move(arguments);
  return call;
}

// Batches of (id int64, text string): `count` batches of `rows` rows.
std::vector<std::shared_ptr<arrow::RecordBatch>> Batches(int count, int rows) {
  auto schema =
      arrow::schema({arrow::field("id", arrow::int64()), arrow::field("text", arrow::utf8())});
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  int64_t id = 0;
  for (int b = 0; b < count; ++b) {
    arrow::Int64Builder ids;
    arrow::StringBuilder texts;
    for (int r = 0; r < rows; ++r, ++id) {
      EXPECT_OK(ids.Append(id));
      if (id % 5 == 3) {
        EXPECT_OK(texts.AppendNull());
      } else {
        EXPECT_OK(texts.Append("row " + std::to_string(id)));
      }
    }
    batches.push_back(arrow::RecordBatch::Make(schema, rows, {*ids.Finish(), *texts.Finish()}));
  }
  return batches;
}

std::shared_ptr<arrow::RecordBatchReader> Reader(
    const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches) {
  auto schema =
      batches.empty()
          ? arrow::schema({arrow::field("id", arrow::int64()), arrow::field("text", arrow::utf8())})
          : batches.front()->schema();
  return arrow::RecordBatchReader::Make(batches, schema).ValueOrDie();
}

arrow::Result<std::vector<std::shared_ptr<arrow::RecordBatch>>> RunAll(
    worker::WorkerDispatcher* dispatcher, UdfOperatorOptions options,
    const std::vector<std::shared_ptr<arrow::RecordBatch>>& input) {
  ARROW_ASSIGN_OR_RAISE(auto op, UdfOperator::Make(dispatcher, std::move(options)));
  ARROW_ASSIGN_OR_RAISE(auto run, op->Execute(Reader(input)));
  return run->ToRecordBatches();
}

TEST(UdfOperator, IdentityKeepsPassThroughColumnsByReference) {
  auto dispatcher = MakeDispatcher();
  auto input = Batches(4, 100);
  UdfOperatorOptions options;
  options.udfs = {Call("same", "identity_text", {cp::field_ref("text")})};
  ASSERT_OK_AND_ASSIGN(auto output, RunAll(dispatcher.get(), options, input));
  ASSERT_EQ(output.size(), input.size());
  for (size_t i = 0; i < input.size(); ++i) {
    ASSERT_EQ(output[i]->num_columns(), 3);
    EXPECT_EQ(output[i]->schema()->field(2)->name(), "same");
    EXPECT_TRUE(output[i]->column(2)->Equals(*input[i]->column(1)));
    // Pass-through columns are the input's arrays: same buffers, no copy.
    EXPECT_EQ(output[i]->column(0)->data()->buffers[1]->data(),
              input[i]->column(0)->data()->buffers[1]->data());
    EXPECT_EQ(output[i]->column(1)->data()->buffers[2]->data(),
              input[i]->column(1)->data()->buffers[2]->data());
  }
}

TEST(UdfOperator, SeveralUdfsExpressionsAndWorkersKeepInputOrder) {
  auto dispatcher = MakeDispatcher();
  auto input = Batches(40, 7);
  UdfOperatorOptions options;
  options.workers = 3;
  options.max_batches_in_flight_per_worker = 2;
  options.pass_through = std::vector<std::string>{"id"};
  options.udfs = {Call("next", "plus_one", {cp::field_ref("id")}),
                  Call("loud", "shout", {cp::call("utf8_lower", {cp::field_ref("text")})})};
  ASSERT_OK_AND_ASSIGN(auto output, RunAll(dispatcher.get(), options, input));
  ASSERT_EQ(output.size(), input.size());
  for (size_t i = 0; i < input.size(); ++i) {
    const auto& ids = static_cast<const arrow::Int64Array&>(*output[i]->column(0));
    const auto& next = static_cast<const arrow::Int64Array&>(*output[i]->column(1));
    const auto& loud = static_cast<const arrow::StringArray&>(*output[i]->column(2));
    for (int64_t r = 0; r < output[i]->num_rows(); ++r) {
      EXPECT_EQ(ids.Value(r), static_cast<int64_t>(i * 7 + r));
      EXPECT_EQ(next.Value(r), ids.Value(r) + 1);
      if (ids.Value(r) % 5 == 3) {
        EXPECT_TRUE(loud.IsNull(r));
      } else {
        EXPECT_EQ(loud.GetString(r), "ROW " + std::to_string(ids.Value(r)) + "!");
      }
    }
  }
  EXPECT_EQ(dispatcher->workers_started(), 3);
}

TEST(UdfOperator, RuntimesRunOnTheirOwnPoolsAndResultsKeepTheUdfOrder) {
  auto first = MakeDispatcher();
  auto second = MakeDispatcher();
  auto input = Batches(25, 9);
  UdfOperatorOptions options;
  options.workers = 2;
  options.max_batches_in_flight_per_worker = 2;
  options.pass_through = std::vector<std::string>{"id"};
  options.udfs = {Call("next", "plus_one", {cp::field_ref("id")}),
                  Call("loud", "shout", {cp::field_ref("text")}),
                  Call("pid_a", "process_id", {cp::field_ref("id")}),
                  Call("pid_b", "process_id", {cp::field_ref("id")})};
  options.udfs[0].runtime = "a";
  options.udfs[1].runtime = "b";
  options.udfs[2].runtime = "a";
  options.udfs[3].runtime = "b";
  ASSERT_OK_AND_ASSIGN(auto op,
                       UdfOperator::Make({{"a", first.get()}, {"b", second.get()}}, options));
  ASSERT_OK_AND_ASSIGN(auto run, op->Execute(Reader(input)));
  EXPECT_EQ(run->schema()->ToString(),
            "id: int64\nnext: int64\nloud: string\npid_a: int64\npid_b: int64");
  ASSERT_OK_AND_ASSIGN(auto output, run->ToRecordBatches());
  ASSERT_EQ(output.size(), input.size());
  for (size_t i = 0; i < input.size(); ++i) {
    const auto& ids = static_cast<const arrow::Int64Array&>(*output[i]->column(0));
    const auto& next = static_cast<const arrow::Int64Array&>(*output[i]->column(1));
    const auto& loud = static_cast<const arrow::StringArray&>(*output[i]->column(2));
    const auto& pid_a = static_cast<const arrow::Int64Array&>(*output[i]->column(3));
    const auto& pid_b = static_cast<const arrow::Int64Array&>(*output[i]->column(4));
    for (int64_t r = 0; r < output[i]->num_rows(); ++r) {
      EXPECT_EQ(ids.Value(r), static_cast<int64_t>(i * 9 + r));
      EXPECT_EQ(next.Value(r), ids.Value(r) + 1);
      if (!loud.IsNull(r)) {
        EXPECT_EQ(loud.GetString(r), "ROW " + std::to_string(ids.Value(r)) + "!");
      }
      // Each runtime's UDFs ran in that runtime's own worker processes.
      EXPECT_NE(pid_a.Value(r), pid_b.Value(r));
    }
  }
  EXPECT_EQ(first->workers_started(), 2);
  EXPECT_EQ(second->workers_started(), 2);
}

// An embedding engine reads a run's figures from UdfRun::metrics: the input
// once, and one group per runtime with its workers' rows, batches and bytes.
TEST(UdfOperator, ARunOfSeveralRuntimesReturnsItsMetrics) {
  auto first = MakeDispatcher();
  auto second = MakeDispatcher();
  auto input = Batches(6, 10);
  UdfOperatorOptions options;
  options.workers = 2;
  options.udfs = {Call("next", "plus_one", {cp::field_ref("id")}),
                  Call("loud", "shout", {cp::field_ref("text")})};
  options.udfs[0].runtime = "a";
  options.udfs[1].runtime = "b";
  ASSERT_OK_AND_ASSIGN(auto op,
                       UdfOperator::Make({{"a", first.get()}, {"b", second.get()}}, options));
  ASSERT_OK_AND_ASSIGN(auto run, op->Execute(Reader(input)));
  ASSERT_OK_AND_ASSIGN(auto output, run->ToRecordBatches());
  const UdfRunMetrics metrics = run->metrics();
  EXPECT_EQ(metrics.rows, 60);
  EXPECT_EQ(metrics.batches, 6);
  ASSERT_EQ(metrics.groups.size(), 2u);
  for (size_t g = 0; g < 2; ++g) {
    const WorkerMetrics total = metrics.groups[g].Total();
    EXPECT_EQ(metrics.groups[g].udfs, std::vector<std::string>{options.udfs[g].name});
    EXPECT_EQ(metrics.groups[g].workers.size(), 2u);
    EXPECT_EQ(total.rows_in, 60);
    EXPECT_EQ(total.rows_out, 60);
    EXPECT_EQ(total.batches, 6);
    int64_t sent = 0;
    int64_t received = 0;
    for (const auto& batch : input)
      sent += batch->column(static_cast<int>(g))->data()->buffers[1]->size();
    for (const auto& batch : output)
      received += batch->column(2 + static_cast<int>(g))->data()->buffers[1]->size();
    EXPECT_GE(total.bytes_in, sent);
    EXPECT_GE(total.bytes_out, received);
  }
}

TEST(UdfOperator, AnErrorNamesTheRuntimeAndItsCommand) {
  auto python = MakeDispatcher();
  auto input = Batches(3, 10);
  UdfOperatorOptions options;
  options.udfs = {Call("fine", "plus_one", {cp::field_ref("id")}),
                  Call("bad", "fails_on_seven", {cp::field_ref("id")})};
  options.udfs[0].runtime = "py";
  options.udfs[1].runtime = "other";
  EXPECT_FALSE(UdfOperator::Make({{"py", python.get()}}, options).ok());
  auto other = MakeDispatcher();
  ASSERT_OK_AND_ASSIGN(auto op,
                       UdfOperator::Make({{"py", python.get()}, {"other", other.get()}}, options));
  ASSERT_OK_AND_ASSIGN(auto run, op->Execute(Reader(input)));
  auto output = run->ToRecordBatches();
  ASSERT_FALSE(output.ok());
  const std::string message = output.status().message();
  EXPECT_NE(message.find("'bad' (runtime 'other', worker command: "), std::string::npos) << message;
  EXPECT_NE(message.find("quiver.worker"), std::string::npos) << message;
}

TEST(UdfOperator, EmptyBatchesAndEmptyInputs) {
  auto dispatcher = MakeDispatcher();
  UdfOperatorOptions options;
  options.udfs = {Call("next", "plus_one", {cp::field_ref("id")})};
  ASSERT_OK_AND_ASSIGN(auto nothing, RunAll(dispatcher.get(), options, {}));
  EXPECT_TRUE(nothing.empty());
  auto input = Batches(1, 3);
  input.insert(input.begin(), Batches(1, 0).front());
  ASSERT_OK_AND_ASSIGN(auto output, RunAll(dispatcher.get(), options, input));
  ASSERT_EQ(output.size(), 2u);
  EXPECT_EQ(output[0]->num_rows(), 0);
  EXPECT_EQ(output[0]->schema()->field(2)->type()->id(), arrow::Type::INT64);
  EXPECT_EQ(output[1]->num_rows(), 3);
}

TEST(UdfOperator, WorkersAreReusedAcrossRunsAndReplacedAfterACrash) {
  auto dispatcher = MakeDispatcher();
  UdfOperatorOptions options;
  options.udfs = {Call("pid", "process_id", {cp::field_ref("id")})};
  ASSERT_OK_AND_ASSIGN(auto first, RunAll(dispatcher.get(), options, Batches(2, 3)));
  ASSERT_OK_AND_ASSIGN(auto second, RunAll(dispatcher.get(), options, Batches(2, 3)));
  const auto pid_of = [](const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches) {
    return static_cast<const arrow::Int64Array&>(*batches[0]->column(2)).Value(0);
  };
  EXPECT_EQ(pid_of(first), pid_of(second));
  EXPECT_EQ(dispatcher->workers_started(), 1);

  UdfOperatorOptions crash = options;
  crash.udfs = {Call("boom", "kills_itself", {cp::field_ref("id")})};
  auto crashed = RunAll(dispatcher.get(), crash, Batches(2, 3));
  ASSERT_FALSE(crashed.ok());
  EXPECT_NE(crashed.status().message().find("SIGKILL"), std::string::npos)
      << crashed.status().ToString();
  ASSERT_OK_AND_ASSIGN(auto after, RunAll(dispatcher.get(), options, Batches(1, 3)));
  EXPECT_NE(pid_of(after), pid_of(first));
  EXPECT_EQ(dispatcher->workers_started(), 2);
}

TEST(UdfOperator, UdfErrorNamesTheUdfAndTheBatchAndKeepsTheWorker) {
  auto dispatcher = MakeDispatcher();
  UdfOperatorOptions options;
  options.udfs = {Call("checked", "fails_on_seven", {cp::field_ref("id")})};
  auto result = RunAll(dispatcher.get(), options, Batches(3, 5));
  ASSERT_FALSE(result.ok());
  const std::string message = result.status().message();
  EXPECT_NE(message.find("UDF 'checked' raised ValueError: seven is not allowed"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("batch 1 (rows 5-9)"), std::string::npos) << message;
  EXPECT_NE(message.find("fails_on_seven"), std::string::npos) << message;  // the traceback
  // The worker survived its UDF's error and serves the next run.
  options.udfs = {Call("next", "plus_one", {cp::field_ref("id")})};
  ASSERT_OK(RunAll(dispatcher.get(), options, Batches(1, 5)));
  EXPECT_EQ(dispatcher->workers_started(), 1);
}

TEST(UdfOperator, DeclaredReturnTypeMustMatchTheWorkers) {
  auto dispatcher = MakeDispatcher();
  UdfOperatorOptions options;
  options.udfs = {Call("next", "plus_one", {cp::field_ref("id")})};
  options.udfs[0].return_type = arrow::utf8();
  auto result = RunAll(dispatcher.get(), options, Batches(1, 5));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("next"), std::string::npos)
      << result.status().ToString();
}

}  // namespace
}  // namespace quiver::exec
